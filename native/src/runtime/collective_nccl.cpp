// NCCL behind the Collective interface (runtime/collective_nccl.h). Device collectives enqueue on
// the caller's stream; host broadcasts (rank 0's step messages) go through a device buffer on the
// group's own stream and return once the bytes have arrived, so a message is complete before the
// step it describes issues any collective. All-reduces of bf16 buffers up to 1 MiB (the decode
// step's) take the one-shot kernel over peer memory where the whole group can map it
// (runtime/peer_allreduce.h): one NVLink round trip where NCCL's all-reduce takes 25-40 us.
#include "runtime/collective_nccl.h"

#include <cstdlib>

#include "grpst/common.h"

#ifdef GRPST_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/peer_allreduce.h"
#endif

namespace grpst {

#ifdef GRPST_WITH_NCCL

namespace {

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + ncclGetErrorString(r));
}
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("NCCL group: ") + what + ": " + cudaGetErrorString(e));
}

ncclDataType_t nccl_type(CollDType t) { return t == CollDType::F32 ? ncclFloat32 : ncclBfloat16; }

class NcclCollective final : public Collective {
 public:
  NcclCollective(const ncclUniqueId& id, int rank, int size, int device) : rank_(rank), size_(size), device_(device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    const ncclResult_t r = ncclCommInitRank(&comm_, size, id, rank);
    if (r != ncclSuccess) {
      cudaStreamDestroy(stream_);
      check(r, "ncclCommInitRank");
    }
    if (size < 2) return;
    try {
      peer_ = PeerAllReduce::create(rank, size, [this](const void* send, void* recv, size_t bytes) { gather_host(send, recv, bytes); },
                                    &peer_off_);
    } catch (...) {
      release();
      throw;
    }
  }
  ~NcclCollective() override { release(); }

  std::string describe() const override {
    if (size_ < 2) return "nccl";
    return peer_ ? "nccl; all-reduce up to 1 MiB one-shot over peer memory" : "nccl; one-shot all-reduce off: " + peer_off_;
  }

 private:
  void release() {
    peer_.reset();
    if (comm_) ncclCommDestroy(comm_);
    comm_ = nullptr;
    if (buf_) cudaFree(buf_);
    buf_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
  // recv [size * bytes] = every rank's `bytes` host bytes (the one-shot kernel's set-up votes).
  void gather_host(const void* send, void* recv, size_t bytes) {
    char* d = static_cast<char*>(message_buffer(bytes * size_));
    check(cudaMemcpyAsync(d + bytes * rank_, send, bytes, cudaMemcpyHostToDevice, stream_), "copy gather");
    check(ncclAllGather(d + bytes * rank_, d, bytes, ncclUint8, comm_, stream_), "all-gather");
    check(cudaMemcpyAsync(recv, d, bytes * size_, cudaMemcpyDeviceToHost, stream_), "copy gather");
    check(cudaStreamSynchronize(stream_), "gather");
  }
  // The group's device buffer for host messages (broadcasts, set-up gathers), grown to `bytes`.
  void* message_buffer(size_t bytes) {
    if (bytes > cap_) {
      if (buf_) cudaFree(buf_);
      buf_ = nullptr;
      cap_ = 0;
      check(cudaMalloc(&buf_, bytes), "cudaMalloc message buffer");
      cap_ = bytes;
    }
    return buf_;
  }

 public:
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }
  bool on_device() const override { return true; }

  void all_reduce_sum(void* buf, size_t count, CollDType type, void* stream) override {
    ncclComm_t comm = live();
    // The same choice on every rank: it depends only on the count and type (buffers are cudaMalloc'ed).
    if (peer_ && type == CollDType::BF16 && peer_->fits(buf, count)) return peer_->all_reduce(buf, count, stream);
    check(ncclAllReduce(buf, buf, count, nccl_type(type), ncclSum, comm, static_cast<cudaStream_t>(stream)), "all-reduce");
  }
  void all_gather(const void* send, void* recv, size_t count, CollDType type, void* stream) override {
    check(ncclAllGather(send, recv, count, nccl_type(type), live(), static_cast<cudaStream_t>(stream)), "all-gather");
  }
  void broadcast_host(void* host, size_t bytes) override {
    if (bytes == 0) return;
    ncclComm_t comm = live();
    check(cudaSetDevice(device_), "cudaSetDevice");
    message_buffer(bytes);
    if (rank_ == 0) check(cudaMemcpyAsync(buf_, host, bytes, cudaMemcpyHostToDevice, stream_), "copy message");
    check(ncclBroadcast(buf_, buf_, bytes, ncclUint8, 0, comm, stream_), "broadcast");
    if (rank_ != 0) check(cudaMemcpyAsync(host, buf_, bytes, cudaMemcpyDeviceToHost, stream_), "copy message");
    check(cudaStreamSynchronize(stream_), "broadcast");
  }
  void abort() override {
    if (peer_) peer_->abort();  // a one-shot kernel waiting at its barrier returns
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

 private:
  ncclComm_t live() const {
    if (!comm_) throw Error("the NCCL group was aborted after a failure on one of its ranks");
    return comm_;
  }
  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* buf_ = nullptr;
  size_t cap_ = 0;
  std::unique_ptr<PeerAllReduce> peer_;  // null: every all-reduce through NCCL (peer_off_ says why)
  std::string peer_off_;
};

}  // namespace

bool built_with_nccl() { return true; }

std::string nccl_unique_id() {
  ncclUniqueId id;
  check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : id.internal) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 15]);
  }
  return s;
}

std::unique_ptr<Collective> make_nccl_collective(const std::string& id_hex, int rank, int size, int device) {
  ncclUniqueId id;
  if (id_hex.size() != 2 * sizeof(id.internal)) throw Error("the NCCL unique id must be " + std::to_string(2 * sizeof(id.internal)) + " hex digits");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error("the NCCL unique id is not hex");
  };
  for (size_t i = 0; i < sizeof(id.internal); i++) id.internal[i] = char(nibble(id_hex[2 * i]) << 4 | nibble(id_hex[2 * i + 1]));
  // NVLink SHARP multicast stays off: grpst's all-reduces are small, and multicast objects are a
  // resource the host's GPUs share. Set before NCCL reads its environment (at init).
  setenv("NCCL_NVLS_ENABLE", "0", 1);
  return std::make_unique<NcclCollective>(id, rank, size, device);
}

#else

namespace {
[[noreturn]] void no_nccl() {
  throw Error("this build of the native runtime has no NCCL, which tensor-parallel engines need across GPUs; install "
              "NCCL (nccl.h and libnccl, e.g. the libnccl-dev package) on a machine with the CUDA toolkit and rebuild "
              "with npm run build:native");
}
}  // namespace

bool built_with_nccl() { return false; }
std::string nccl_unique_id() { no_nccl(); }
std::unique_ptr<Collective> make_nccl_collective(const std::string&, int, int, int) { no_nccl(); }

#endif

}  // namespace grpst
