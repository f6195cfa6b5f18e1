#include "csentencepiece.h"
#include <sentencepiece_processor.h>
extern "C" const char *spm_wrapper_version(void) { return "1"; }
