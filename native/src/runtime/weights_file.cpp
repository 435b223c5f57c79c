// WeightsFile: one weights file in memory, mapped or read (use_mmap), optionally locked (use_mlock).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "grpst/model_runner.h"
#include "grpst/tensor_store.h"
#include "mapped_fault.h"

namespace grpst {

namespace {

std::string mib(uint64_t bytes) { return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB"; }

// Reads go in chunks so a stop during a long read (tens of GB from a slow disk) is seen between
// two of them, as the layer-by-layer load sees it.
constexpr size_t kReadChunk = size_t(64) << 20;

}  // namespace

WeightsFile::WeightsFile(const std::string& path, const WeightsLoad& how) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error("cannot stat " + path + ": " + std::strerror(e));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    try {
      if (how.map) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(errno));
        data_ = static_cast<const uint8_t*>(p);
        // Start reading the file in the background: the first forward pass then finds the weights
        // in memory instead of faulting them in page by page.
        ::madvise(p, size_, MADV_WILLNEED);
        watch_mapped_range(p, size_, path);
      } else {
        read_all(fd, how);
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  ::close(fd);
  if (how.lock && data_) {
    // A refused lock is not fatal (as llama.cpp's --mlock): the store reports it with the fix.
    if (::mlock(data_, size_) == 0) locked_ = true;
    else lock_errno_ = errno;
  }
}

void WeightsFile::read_all(int fd, const WeightsLoad& how) {
  // Anonymous pages: page-aligned (tensors keep the alignment they have in a mapping, 64 bytes
  // and more, as the kernels load them) and handed back to the system whole at munmap.
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    throw Error("cannot allocate " + mib(size_) + " to read " + path_ + " into memory (use_mmap: false): " + std::strerror(errno) +
                "; free memory, or set use_mmap: true to map the file instead");
  }
  uint8_t* dst = static_cast<uint8_t*>(p);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  size_t done = 0;
  try {
    while (done < size_) {
      throw_if_load_cancelled(how.cancel);
      const ssize_t n = ::pread(fd, dst + done, std::min(kReadChunk, size_ - done), off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error("cannot read " + path_ + " at byte " + std::to_string(done) + " of " + std::to_string(size_) + ": " + std::strerror(errno));
      if (n == 0) {
        throw Error(path_ + " ended at byte " + std::to_string(done) + " while it was read, but had " + std::to_string(size_) +
                    " bytes when opened: it was truncated or replaced during the load; copy the model folder again (or rebuild the engine) and restart");
      }
      done += size_t(n);
    }
  } catch (...) {
    ::munmap(p, size_);
    throw;
  }
  // Read-only from here, as a mapping is: a stray write faults instead of changing a weight.
  ::mprotect(p, size_, PROT_READ);
  data_ = dst;
}

WeightsFile::~WeightsFile() {
  if (!data_) return;
  unwatch_mapped_range(data_);
  ::munmap(const_cast<uint8_t*>(data_), size_);  // also unlocks
}

void WeightsReport::add(const WeightsReport& other) {
  if (other.bytes == 0 && other.lock_warning.empty()) return;
  const bool first = bytes == 0 && lock_warning.empty();
  // mapped and locked describe the weights still held (a draft model's beside a released main
  // model's): a released part changes them only where it is all there is.
  const bool held_before = !first && !host_copy_released;
  if (!other.host_copy_released || first) {
    mapped = held_before ? mapped && other.mapped : other.mapped;
    locked = held_before ? locked && other.locked : other.locked;
  }
  host_copy_released = first ? other.host_copy_released : host_copy_released && other.host_copy_released;
  lock_asked = lock_asked || other.lock_asked;
  bytes += other.bytes;
  if (lock_warning.empty()) lock_warning = other.lock_warning;
}

namespace {

/** The warning for weights whose mlock was refused: the error, RLIMIT_MEMLOCK, and how to raise it. */
std::string lock_refused_warning(uint64_t bytes, uint64_t unlocked_bytes, int err) {
  struct rlimit rl{};
  const bool known = ::getrlimit(RLIMIT_MEMLOCK, &rl) == 0;
  const bool unlimited = known && rl.rlim_cur == RLIM_INFINITY;
  std::string limit = !known ? "unknown" : unlimited ? "unlimited" : std::to_string(uint64_t(rl.rlim_cur) >> 10) + " KiB";
  const std::string what = unlocked_bytes == bytes ? "the " + mib(bytes) : mib(unlocked_bytes) + " of the " + mib(bytes);
  std::string text = "use_mlock: could not lock " + what + " of weights in RAM (mlock: " +
                     std::strerror(err) + "; RLIMIT_MEMLOCK, the most memory this process may lock, is " + limit +
                     "); serving on with those weights unlocked: under memory pressure the system may page them out.";
  if (unlimited) return text + " Fix: free memory for them, or set use_mlock: false";
  return text + " Fix: raise the limit where the server starts (ulimit -l unlimited in its shell; LimitMEMLOCK=infinity in a systemd unit; "
                "docker run --ulimit memlock=-1), or set use_mlock: false";
}

}  // namespace

WeightsReport report_weights(const std::vector<const WeightsFile*>& files, const WeightsLoad& how) {
  WeightsReport r;
  r.mapped = how.map;
  r.lock_asked = how.lock;
  r.locked = how.lock;
  uint64_t unlocked = 0;
  int err = 0;
  for (const WeightsFile* f : files) {
    r.bytes += f->size();
    if (how.lock && f->size() > 0 && !f->locked()) {
      r.locked = false;
      unlocked += f->size();
      if (err == 0) err = f->lock_errno();
    }
  }
  if (unlocked > 0) r.lock_warning = lock_refused_warning(r.bytes, unlocked, err);
  return r;
}

}  // namespace grpst
