// C API over libsentencepiece. See include/csentencepiece.h for the conventions.
#include "csentencepiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

struct spm_processor {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

char *copy_cstring(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out == nullptr) return nullptr;
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

void set_error(char **error, const std::string &message) {
    if (error != nullptr) *error = copy_cstring(message);
}

void clear_error(char **error) {
    if (error != nullptr) *error = nullptr;
}

// Runs `body` (returning 0 or an error message set through `error`), converting exceptions.
template <typename F>
int guarded(char **error, F body) {
    clear_error(error);
    try {
        return body();
    } catch (const std::bad_alloc &) {
        set_error(error, "sentencepiece: out of memory");
    } catch (const std::exception &e) {
        set_error(error, std::string("sentencepiece: ") + e.what());
    } catch (...) {
        set_error(error, "sentencepiece: unknown C++ exception");
    }
    return -1;
}

int status_to_error(const sentencepiece::util::Status &status, char **error) {
    if (status.ok()) return 0;
    set_error(error, status.ToString());
    return -1;
}

bool valid_id(const spm_processor *p, int32_t id) {
    return p != nullptr && id >= 0 && id < p->sp.GetPieceSize();
}

// Serves in-memory sentences to the trainer.
class ArraySentenceIterator : public sentencepiece::SentenceIterator {
  public:
    ArraySentenceIterator(const char *const *sentences, const size_t *lengths, size_t count)
        : sentences_(sentences), lengths_(lengths), count_(count) {
        load();
    }
    bool done() const override { return index_ >= count_; }
    void Next() override {
        ++index_;
        load();
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

  private:
    void load() {
        if (index_ < count_) value_.assign(sentences_[index_], lengths_[index_]);
    }
    const char *const *sentences_;
    const size_t *lengths_;
    size_t count_;
    size_t index_ = 0;
    std::string value_;
};

int copy_text_out(const std::string &text, char **out_text, size_t *out_length, char **error) {
    char *buffer = copy_cstring(text);
    if (buffer == nullptr) {
        set_error(error, "sentencepiece: out of memory");
        return -1;
    }
    *out_text = buffer;
    if (out_length != nullptr) *out_length = text.size();
    return 0;
}

}  // namespace

extern "C" {

const char *spm_wrapper_version(void) { return "2"; }

void spm_free_buffer(void *buffer) { std::free(buffer); }

spm_processor *spm_load(const char *path, char **error) {
    spm_processor *result = nullptr;
    guarded(error, [&]() -> int {
        if (path == nullptr) {
            set_error(error, "sentencepiece: no model path");
            return -1;
        }
        auto p = std::make_unique<spm_processor>();
        const auto status = p->sp.Load(path);
        if (!status.ok()) {
            set_error(error, "cannot load SentencePiece model '" + std::string(path) + "': " + status.ToString());
            return -1;
        }
        result = p.release();
        return 0;
    });
    return result;
}

spm_processor *spm_load_from_serialized(const uint8_t *data, size_t length, char **error) {
    spm_processor *result = nullptr;
    guarded(error, [&]() -> int {
        auto p = std::make_unique<spm_processor>();
        const std::string serialized(reinterpret_cast<const char *>(data), data == nullptr ? 0 : length);
        const auto status = p->sp.LoadFromSerializedProto(serialized);
        if (!status.ok()) {
            set_error(error, "cannot load SentencePiece model from bytes: " + status.ToString());
            return -1;
        }
        result = p.release();
        return 0;
    });
    return result;
}

void spm_free(spm_processor *processor) { delete processor; }

int spm_serialized_model(const spm_processor *processor, uint8_t **out, size_t *out_length, char **error) {
    return guarded(error, [&]() -> int {
        const std::string bytes = processor->sp.serialized_model_proto();
        uint8_t *buffer = static_cast<uint8_t *>(std::malloc(bytes.empty() ? 1 : bytes.size()));
        if (buffer == nullptr) throw std::bad_alloc();
        std::memcpy(buffer, bytes.data(), bytes.size());
        *out = buffer;
        *out_length = bytes.size();
        return 0;
    });
}

int32_t spm_piece_size(const spm_processor *processor) { return processor->sp.GetPieceSize(); }

int32_t spm_piece_to_id(const spm_processor *processor, const char *piece, size_t length) {
    try {
        return processor->sp.PieceToId(absl::string_view(piece, length));
    } catch (...) {
        return processor->sp.unk_id();
    }
}

const char *spm_id_to_piece(const spm_processor *processor, int32_t id, size_t *out_length) {
    if (!valid_id(processor, id)) return nullptr;
    try {
        const std::string &piece = processor->sp.IdToPiece(id);
        if (out_length != nullptr) *out_length = piece.size();
        return piece.data();
    } catch (...) {
        return nullptr;
    }
}

float spm_score(const spm_processor *processor, int32_t id) {
    return valid_id(processor, id) ? processor->sp.GetScore(id) : 0.0f;
}

int spm_is_unknown(const spm_processor *processor, int32_t id) {
    return valid_id(processor, id) && processor->sp.IsUnknown(id);
}
int spm_is_control(const spm_processor *processor, int32_t id) {
    return valid_id(processor, id) && processor->sp.IsControl(id);
}
int spm_is_unused(const spm_processor *processor, int32_t id) {
    return valid_id(processor, id) && processor->sp.IsUnused(id);
}
int spm_is_byte(const spm_processor *processor, int32_t id) {
    return valid_id(processor, id) && processor->sp.IsByte(id);
}

int32_t spm_unk_id(const spm_processor *processor) { return processor->sp.unk_id(); }
int32_t spm_bos_id(const spm_processor *processor) { return processor->sp.bos_id(); }
int32_t spm_eos_id(const spm_processor *processor) { return processor->sp.eos_id(); }
int32_t spm_pad_id(const spm_processor *processor) { return processor->sp.pad_id(); }

int spm_encode_ids(const spm_processor *processor, const char *text, size_t length,
                   int32_t *out, size_t capacity, size_t *out_count, char **error) {
    return guarded(error, [&]() -> int {
        // Reused per thread: encoding is called once per sentence on large corpora.
        thread_local std::vector<int> ids;
        ids.clear();
        const auto status = processor->sp.Encode(absl::string_view(text == nullptr ? "" : text, length), &ids);
        if (status_to_error(status, error) != 0) return -1;
        *out_count = ids.size();
        if (ids.size() <= capacity) {
            for (size_t i = 0; i < ids.size(); ++i) out[i] = static_cast<int32_t>(ids[i]);
        }
        return 0;
    });
}

int spm_encode_pieces(const spm_processor *processor, const char *text, size_t length,
                      char **out_bytes, size_t **out_lengths, size_t *out_count, char **error) {
    return guarded(error, [&]() -> int {
        std::vector<std::string> pieces;
        const auto status = processor->sp.Encode(absl::string_view(text == nullptr ? "" : text, length), &pieces);
        if (status_to_error(status, error) != 0) return -1;
        size_t total = 0;
        for (const auto &p : pieces) total += p.size();
        char *bytes = static_cast<char *>(std::malloc(total + 1));
        size_t *lengths = static_cast<size_t *>(std::malloc((pieces.size() + 1) * sizeof(size_t)));
        if (bytes == nullptr || lengths == nullptr) {
            std::free(bytes);
            std::free(lengths);
            throw std::bad_alloc();
        }
        size_t at = 0;
        for (size_t i = 0; i < pieces.size(); ++i) {
            std::memcpy(bytes + at, pieces[i].data(), pieces[i].size());
            at += pieces[i].size();
            lengths[i] = pieces[i].size();
        }
        *out_bytes = bytes;
        *out_lengths = lengths;
        *out_count = pieces.size();
        return 0;
    });
}

int spm_decode_ids(const spm_processor *processor, const int32_t *ids, size_t count,
                   char **out_text, size_t *out_length, char **error) {
    return guarded(error, [&]() -> int {
        const int size = processor->sp.GetPieceSize();
        std::vector<int> v(count);
        for (size_t i = 0; i < count; ++i) {
            if (ids[i] < 0 || ids[i] >= size) {
                set_error(error, "sentencepiece: cannot decode id " + std::to_string(ids[i]) +
                                     " (vocabulary size " + std::to_string(size) + ")");
                return -1;
            }
            v[i] = ids[i];
        }
        std::string text;
        if (status_to_error(processor->sp.Decode(v, &text), error) != 0) return -1;
        return copy_text_out(text, out_text, out_length, error);
    });
}

int spm_decode_pieces(const spm_processor *processor, const char *bytes, const size_t *lengths,
                      size_t count, char **out_text, size_t *out_length, char **error) {
    return guarded(error, [&]() -> int {
        std::vector<std::string> pieces;
        pieces.reserve(count);
        size_t at = 0;
        for (size_t i = 0; i < count; ++i) {
            pieces.emplace_back(bytes + at, lengths[i]);
            at += lengths[i];
        }
        std::string text;
        if (status_to_error(processor->sp.Decode(pieces, &text), error) != 0) return -1;
        return copy_text_out(text, out_text, out_length, error);
    });
}

int spm_train(const char *const *keys, const char *const *values, size_t count,
              const char *const *sentences, const size_t *sentence_lengths, size_t sentence_count,
              uint8_t **out_model, size_t *out_model_length, char **error) {
    return guarded(error, [&]() -> int {
        std::unordered_map<std::string, std::string> kwargs;
        for (size_t i = 0; i < count; ++i) kwargs[keys[i]] = values[i];
        std::unique_ptr<ArraySentenceIterator> iterator;
        if (sentences != nullptr) {
            iterator = std::make_unique<ArraySentenceIterator>(sentences, sentence_lengths, sentence_count);
        }
        // The trainer refuses a model_prefix when it returns the model instead of writing files.
        if (out_model != nullptr) kwargs.erase("model_prefix");
        std::string serialized;
        const auto status = sentencepiece::SentencePieceTrainer::Train(
            kwargs, iterator.get(), out_model != nullptr ? &serialized : nullptr);
        if (!status.ok()) {
            set_error(error, "SentencePiece training failed: " + status.ToString());
            return -1;
        }
        if (out_model != nullptr) {
            uint8_t *buffer = static_cast<uint8_t *>(std::malloc(serialized.empty() ? 1 : serialized.size()));
            if (buffer == nullptr) throw std::bad_alloc();
            std::memcpy(buffer, serialized.data(), serialized.size());
            *out_model = buffer;
            if (out_model_length != nullptr) *out_model_length = serialized.size();
        }
        return 0;
    });
}

}  // extern "C"
