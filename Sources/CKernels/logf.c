#include <math.h>
// Kept out of the vectorized file: one call per row.
float nmt_logf(float v) { return logf(v); }
