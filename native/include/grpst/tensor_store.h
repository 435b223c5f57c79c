// Weights by name, from a generic tensor table: every entry names a file, a byte range, a dtype
// and a shape. Each file is mapped once, read-only; tensors are used in place where their
// layout allows it, or converted once into owned, aligned buffers. HF checkpoints and engine
// folders (prepacked, possibly quantized) load through this same table.
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

/** A read-only mapping of a whole file; unmapped on destruction. */
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

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
  /** Maps every file the table names and checks each byte range lies inside its file. */
  explicit TensorStore(std::vector<TensorDesc> table);

  bool has(const std::string& name) const;
  const TensorDesc& desc(const std::string& name) const;  // throws Error naming the tensor
  /** Raw bytes in the mapping. */
  const uint8_t* raw(const std::string& name) const;
  /** Checks the shape, then returns bf16 values: in place for BF16, else converted (owned). */
  const uint16_t* bf16(const std::string& name, std::vector<int64_t> shape);
  /** Checks the shape, then returns fp32 values (owned copy; for small tensors such as norms). */
  const float* f32(const std::string& name, std::vector<int64_t> shape);
  /** Bytes mapped from files plus bytes converted into owned buffers. */
  size_t mapped_bytes() const;
  size_t owned_bytes() const;

 private:
  void check_shape(const TensorDesc& d, const std::vector<int64_t>& shape) const;
  std::map<std::string, TensorDesc> table_;
  std::map<std::string, std::unique_ptr<MappedFile>> files_;
  std::vector<std::unique_ptr<AlignedBuffer>> owned_;
  std::map<std::string, const uint16_t*> converted_bf16_;  // each tensor converted at most once
};

}  // namespace grpst
