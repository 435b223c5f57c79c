// Weights by name, from a generic tensor table: every entry names a file, a byte range, a dtype
// and a shape. Each file is mapped once, read-only (or read once into memory of its own, see
// WeightsLoad); tensors are used in place where their layout allows it, or converted once into
// owned, aligned buffers. HF checkpoints and engine folders (prepacked, possibly quantized) load
// through this same table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grpst/common.h"

namespace grpst {

struct TensorDesc {
  std::string name;
  std::string file;
  uint64_t offset = 0;   // bytes from the start of the file
  uint64_t nbytes = 0;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
  int64_t numel() const;
};

/**
 * How a weights file is brought into memory: the inference conf's use_mmap and use_mlock.
 * Mapped pages belong to the file: truncating or rewriting it under a running server takes them
 * away (SIGBUS on the next read) or changes the weights. Read, the bytes are the process's own.
 */
struct WeightsLoad {
  bool map = true;
  bool lock = false;                  // mlock the bytes; a refusal is reported, never thrown
  const int32_t* cancel = nullptr;    // the load's cancel flag, checked between chunks of a read (not owned)
};

/** What a load did with its weights files, for the log line that reports the model. */
struct WeightsReport {
  bool mapped = true;
  bool lock_asked = false;
  bool locked = false;                // every file locked
  uint64_t bytes = 0;                 // bytes of the files
  std::string lock_warning;           // why a lock was refused, with the fix; empty when none was
  // Uploaded to the GPU and released on the host (runtime/weights_on_gpu.h): the files may change
  // or go, and mapped / locked describe nothing held. Merged, true only when every part was.
  bool host_copy_released = false;
  void add(const WeightsReport& other);
};

/**
 * A whole file, read-only: mapped (released with munmap) or read into page-aligned memory of its
 * own, so every tensor keeps the alignment it has in a mapping.
 */
class WeightsFile {
 public:
  WeightsFile(const std::string& path, const WeightsLoad& how);
  ~WeightsFile();
  WeightsFile(const WeightsFile&) = delete;
  WeightsFile& operator=(const WeightsFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  bool locked() const { return locked_; }
  /** errno of a refused mlock (0: none asked, or it succeeded). */
  int lock_errno() const { return lock_errno_; }

 private:
  void read_all(int fd, const WeightsLoad& how);
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool locked_ = false;
  int lock_errno_ = 0;
};

/** The report of a store's files: mapped or read, locked or not, the warning for a refused lock. */
WeightsReport report_weights(const std::vector<const WeightsFile*>& files, const WeightsLoad& how);

/** Memory aligned for SIMD loads, released with free(). */
struct AlignedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit AlignedBuffer(size_t n);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

class TensorStore {
 public:
  /** Maps (or reads) every file the table names and checks each byte range lies inside its file. */
  explicit TensorStore(std::vector<TensorDesc> table, const WeightsLoad& how = {});

  bool has(const std::string& name) const;
  const TensorDesc& desc(const std::string& name) const;  // throws Error naming the tensor
  /** Raw bytes in the mapping (or the copy read). */
  const uint8_t* raw(const std::string& name) const;
  /** Checks the shape, then returns bf16 values: in place for BF16, else converted (owned). */
  const uint16_t* bf16(const std::string& name, std::vector<int64_t> shape);
  /** Checks the shape, then returns fp32 values (owned copy; for small tensors such as norms). */
  const float* f32(const std::string& name, std::vector<int64_t> shape);
  /** Bytes mapped from files plus bytes converted into owned buffers. */
  size_t mapped_bytes() const;
  size_t owned_bytes() const;
  /** Mapped or read, locked or not, and why a lock was refused. */
  const WeightsReport& weights_report() const { return report_; }

 private:
  void check_shape(const TensorDesc& d, const std::vector<int64_t>& shape) const;
  std::map<std::string, TensorDesc> table_;
  std::map<std::string, std::unique_ptr<WeightsFile>> files_;
  WeightsReport report_;
  std::vector<std::unique_ptr<AlignedBuffer>> owned_;
  std::map<std::string, const uint16_t*> converted_bf16_;  // each tensor converted at most once
};

}  // namespace grpst
