#ifndef CSENTENCEPIECE_H
#define CSENTENCEPIECE_H
#ifdef __cplusplus
extern "C" {
#endif
/// Version string of the linked libsentencepiece wrapper.
const char *spm_wrapper_version(void);
#ifdef __cplusplus
}
#endif
#endif
