// TensorStore: maps (or reads) checkpoint / engine files read-only and hands out tensors by name.
#include <cstdlib>
#include <cstring>

#include "grpst/tensor_store.h"

namespace grpst {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
}  // namespace

int64_t TensorDesc::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

AlignedBuffer::AlignedBuffer(size_t n) : bytes(n) {
  if (posix_memalign(&ptr, 64, n ? n : 64) != 0) throw Error("out of memory allocating " + std::to_string(n) + " bytes");
}

AlignedBuffer::~AlignedBuffer() { std::free(ptr); }

TensorStore::TensorStore(std::vector<TensorDesc> table, const WeightsLoad& how) {
  for (auto& d : table) {
    if (table_.count(d.name)) throw Error("tensor " + d.name + " is listed twice");
    if (!files_.count(d.file)) files_[d.file] = std::make_unique<WeightsFile>(d.file, how);
    const WeightsFile& f = *files_[d.file];
    const uint64_t expect = uint64_t(d.numel()) * dtype_size(d.dtype);
    if (expect != d.nbytes) {
      throw Error(d.file + ": tensor " + d.name + " holds " + std::to_string(d.nbytes) + " bytes but " +
                  dtype_name(d.dtype) + " " + shape_str(d.shape) + " needs " + std::to_string(expect));
    }
    if (d.offset > f.size() || d.nbytes > f.size() - d.offset) {
      throw Error(d.file + " is truncated: tensor " + d.name + " ends at byte " + std::to_string(d.offset + d.nbytes) +
                  " but the file has " + std::to_string(f.size()) + " bytes");
    }
    std::string name = d.name;
    table_.emplace(std::move(name), std::move(d));
  }
  std::vector<const WeightsFile*> files;
  for (auto& kv : files_) files.push_back(kv.second.get());
  report_ = report_weights(files, how);
}

bool TensorStore::has(const std::string& name) const { return table_.count(name) != 0; }

const TensorDesc& TensorStore::desc(const std::string& name) const {
  auto it = table_.find(name);
  if (it == table_.end()) throw Error("tensor " + name + " is missing from the checkpoint");
  return it->second;
}

const uint8_t* TensorStore::raw(const std::string& name) const {
  const TensorDesc& d = desc(name);
  return files_.at(d.file)->data() + d.offset;
}

void TensorStore::check_shape(const TensorDesc& d, const std::vector<int64_t>& shape) const {
  if (d.shape != shape) {
    throw Error(d.file + ": tensor " + d.name + " has shape " + shape_str(d.shape) + " but the model needs " +
                shape_str(shape));
  }
}

const uint16_t* TensorStore::bf16(const std::string& name, std::vector<int64_t> shape) {
  const TensorDesc& d = desc(name);
  check_shape(d, shape);
  const uint8_t* src = raw(name);
  const int64_t n = d.numel();
  if (d.dtype == DType::BF16) return reinterpret_cast<const uint16_t*>(src);  // in place; loads are unaligned
  auto cached = converted_bf16_.find(name);
  if (cached != converted_bf16_.end()) return cached->second;
  auto buf = std::make_unique<AlignedBuffer>(size_t(n) * 2);
  uint16_t* dst = static_cast<uint16_t*>(buf->ptr);
  if (d.dtype == DType::F32) {
    for (int64_t i = 0; i < n; i++) {
      float f;
      std::memcpy(&f, src + i * 4, 4);
      dst[i] = f32_to_bf16(f);
    }
  } else if (d.dtype == DType::F16) {
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      std::memcpy(&h, src + i * 2, 2);
      dst[i] = f32_to_bf16(f16_to_f32(h));
    }
  } else {
    throw Error(d.file + ": tensor " + name + " is " + dtype_name(d.dtype) + "; expected bf16, fp16 or fp32");
  }
  owned_.push_back(std::move(buf));
  converted_bf16_[name] = dst;
  return dst;
}

const float* TensorStore::f32(const std::string& name, std::vector<int64_t> shape) {
  const TensorDesc& d = desc(name);
  check_shape(d, shape);
  const uint8_t* src = raw(name);
  const int64_t n = d.numel();
  auto buf = std::make_unique<AlignedBuffer>(size_t(n) * 4);
  float* dst = static_cast<float*>(buf->ptr);
  for (int64_t i = 0; i < n; i++) {
    switch (d.dtype) {
      case DType::BF16: {
        uint16_t h;
        std::memcpy(&h, src + i * 2, 2);
        dst[i] = bf16_to_f32(h);
        break;
      }
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, src + i * 2, 2);
        dst[i] = f16_to_f32(h);
        break;
      }
      case DType::F32:
        std::memcpy(&dst[i], src + i * 4, 4);
        break;
      default:
        throw Error(d.file + ": tensor " + name + " is " + dtype_name(d.dtype) + "; expected bf16, fp16 or fp32");
    }
  }
  owned_.push_back(std::move(buf));
  return dst;
}

size_t TensorStore::mapped_bytes() const {
  size_t n = 0;
  for (auto& kv : files_) n += kv.second->size();
  return n;
}

size_t TensorStore::owned_bytes() const {
  size_t n = 0;
  for (auto& b : owned_) n += b->bytes;
  return n;
}

}  // namespace grpst
