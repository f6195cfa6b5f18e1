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
static inline int nmt_mpi_broadcast_bytes(void *bytes, int count, int root) {
    return MPI_Bcast(bytes, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int nmt_mpi_finalize(void) { return MPI_Finalize(); }
static inline void nmt_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
