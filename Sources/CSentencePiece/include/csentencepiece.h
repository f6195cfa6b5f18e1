#ifndef CSENTENCEPIECE_H
#define CSENTENCEPIECE_H
/*
 * A small C API over libsentencepiece (C++).
 *
 * Conventions:
 *  - No C++ exception ever crosses this boundary; every entry point catches everything.
 *  - Functions that can fail take a `char **error` out-parameter (may be NULL). On failure they
 *    return NULL / a non-zero status and, when `error` is not NULL, store a message allocated
 *    with malloc that the caller releases with spm_free_buffer(). On success *error is set to NULL.
 *  - Buffers returned to the caller (ids, pieces, decoded text, serialized models) are allocated
 *    with malloc and released with spm_free_buffer().
 *  - Text is UTF-8 given as (pointer, length); it need not be NUL-terminated.
 *  - A processor is immutable after loading; the const functions may be called concurrently
 *    from several threads on the same handle.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Version string of this wrapper ("2").
const char *spm_wrapper_version(void);

/// Releases any buffer or error string returned by this API (NULL is fine).
void spm_free_buffer(void *buffer);

/// Opaque handle to a loaded sentencepiece::SentencePieceProcessor.
typedef struct spm_processor spm_processor;

/// Loads a `.model` file. Returns NULL on failure.
spm_processor *spm_load(const char *path, char **error);
/// Loads a model from its serialized ModelProto bytes. Returns NULL on failure.
spm_processor *spm_load_from_serialized(const uint8_t *data, size_t length, char **error);
/// Releases a processor (NULL is fine).
void spm_free(spm_processor *processor);

/// Serialized ModelProto of a loaded model (malloc'ed copy in *out, size in *out_length). 0 on success.
int spm_serialized_model(const spm_processor *processor, uint8_t **out, size_t *out_length, char **error);

/// Number of pieces (vocabulary size).
int32_t spm_piece_size(const spm_processor *processor);
/// Id of a piece; the unknown id when the piece is not in the vocabulary.
int32_t spm_piece_to_id(const spm_processor *processor, const char *piece, size_t length);
/// The piece of an id, or NULL when the id is out of range. The bytes belong to the processor
/// and stay valid while it lives. *out_length receives the length in bytes.
const char *spm_id_to_piece(const spm_processor *processor, int32_t id, size_t *out_length);
/// Score of an id (0 when out of range).
float spm_score(const spm_processor *processor, int32_t id);
/// Piece-type predicates (0 when out of range).
int spm_is_unknown(const spm_processor *processor, int32_t id);
int spm_is_control(const spm_processor *processor, int32_t id);
int spm_is_unused(const spm_processor *processor, int32_t id);
int spm_is_byte(const spm_processor *processor, int32_t id);
/// Special ids as stored in the model (-1 when the model has none).
int32_t spm_unk_id(const spm_processor *processor);
int32_t spm_bos_id(const spm_processor *processor);
int32_t spm_eos_id(const spm_processor *processor);
int32_t spm_pad_id(const spm_processor *processor);

/// Encodes text to ids, writing at most `capacity` ids into `out` (may be NULL when capacity is 0).
/// *out_count receives the number of ids the encoding has; when it is larger than `capacity`,
/// nothing useful was written and the caller retries with a larger buffer. 0 on success.
int spm_encode_ids(const spm_processor *processor, const char *text, size_t length,
                   int32_t *out, size_t capacity, size_t *out_count, char **error);

/// Encodes text to pieces. On success (0) *out_bytes holds the pieces concatenated (malloc'ed),
/// *out_lengths (malloc'ed) the byte length of each of the *out_count pieces.
int spm_encode_pieces(const spm_processor *processor, const char *text, size_t length,
                      char **out_bytes, size_t **out_lengths, size_t *out_count, char **error);

/// Decodes ids to text (malloc'ed, NUL-terminated, length in *out_length). Ids out of range are
/// an error. 0 on success.
int spm_decode_ids(const spm_processor *processor, const int32_t *ids, size_t count,
                   char **out_text, size_t *out_length, char **error);

/// Decodes pieces (given concatenated in `bytes` with the byte length of each in `lengths`).
int spm_decode_pieces(const spm_processor *processor, const char *bytes, const size_t *lengths,
                      size_t count, char **out_text, size_t *out_length, char **error);

/// Trains a model. `keys`/`values` are `count` trainer flags without leading dashes
/// (e.g. "vocab_size" -> "8000"), as accepted by `spm_train`.
/// When `sentences` is not NULL, the training sentences are taken from it (`sentence_count`
/// sentences, `sentences[i]` with byte length `sentence_lengths[i]`) instead of the `input` flag.
/// When `out_model` is not NULL the serialized model is returned there (malloc'ed) and no files
/// are written; otherwise the trainer writes `model_prefix`.model and `.vocab`. 0 on success.
int spm_train(const char *const *keys, const char *const *values, size_t count,
              const char *const *sentences, const size_t *sentence_lengths, size_t sentence_count,
              uint8_t **out_model, size_t *out_model_length, char **error);

#ifdef __cplusplus
}
#endif
#endif
