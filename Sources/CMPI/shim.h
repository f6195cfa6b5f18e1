// Open MPI (Debian: libopenmpi-dev), through functions Swift can call: MPI_COMM_WORLD, MPI_FLOAT and
// MPI_SUM are macros over Open MPI's globals, which Swift cannot import.
#include <mpi.h>

static inline int nmt_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int nmt_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int nmt_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
static inline int nmt_mpi_sum_floats(float *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int nmt_mpi_sum_doubles(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
// Sums over the processes, each process receiving only its part (counts[rank] floats, parts in rank order).
static inline int nmt_mpi_sum_scattered_floats(const float *values, float *part, const int *counts) {
    return MPI_Reduce_scatter(values, part, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
// Every process's part of `values` (counts[r] floats at offsets[r]) from process r, on every process.
static inline int nmt_mpi_gather_parts_floats(float *values, const int *counts, const int *offsets) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, values, counts, offsets, MPI_FLOAT, MPI_COMM_WORLD);
}
static inline int nmt_mpi_broadcast_bytes(void *bytes, int count, int root) {
    return MPI_Bcast(bytes, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int nmt_mpi_finalize(void) { return MPI_Finalize(); }
static inline void nmt_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
