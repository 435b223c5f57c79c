// The in-process group: members are threads of this process sharing host buffers. Each operation
// publishes every member's pointer, waits for all, computes from all of them, and waits again
// before a buffer may change, so no member reads memory another has moved on from.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "grpst/collective.h"
#include "grpst/common.h"

namespace grpst {

size_t coll_dtype_size(CollDType t) { return t == CollDType::F32 ? 4 : 2; }

namespace {

struct Shared {
  explicit Shared(int n) : size(n), slots(n, nullptr) {}
  const int size;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  bool aborted = false;
  std::vector<const void*> slots;

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex);
    if (aborted) throw Error("tensor parallel group aborted: another rank failed");
    const uint64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen || aborted; });
    if (generation == gen) throw Error("tensor parallel group aborted: another rank failed");
  }
  void abort() {
    std::lock_guard<std::mutex> lock(mutex);
    aborted = true;
    cv.notify_all();
  }
};

float load(const void* p, size_t i, CollDType t) {
  if (t == CollDType::F32) return static_cast<const float*>(p)[i];
  return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

class InProcessMember final : public Collective {
 public:
  InProcessMember(std::shared_ptr<Shared> s, int rank) : s_(std::move(s)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return s_->size; }
  std::string name() const override { return "in-process"; }
  bool on_device() const override { return false; }

  void all_reduce_sum(void* buf, size_t count, CollDType type, void*) override {
    s_->slots[rank_] = buf;
    s_->barrier();
    // Sums in rank order in fp32 (bf16 rounded once at the end), the same on every member.
    std::vector<float> sum(count, 0.0f);
    for (int r = 0; r < s_->size; r++)
      for (size_t i = 0; i < count; i++) sum[i] += load(s_->slots[r], i, type);
    s_->barrier();
    if (type == CollDType::F32) {
      std::memcpy(buf, sum.data(), count * 4);
    } else {
      uint16_t* out = static_cast<uint16_t*>(buf);
      for (size_t i = 0; i < count; i++) out[i] = f32_to_bf16(sum[i]);
    }
  }

  void all_gather(const void* send, void* recv, size_t count, CollDType type, void*) override {
    s_->slots[rank_] = send;
    s_->barrier();
    const size_t bytes = count * coll_dtype_size(type);
    for (int r = 0; r < s_->size; r++) std::memcpy(static_cast<uint8_t*>(recv) + r * bytes, s_->slots[r], bytes);
    s_->barrier();
  }

  void broadcast_host(void* buf, size_t bytes) override {
    s_->slots[rank_] = buf;
    s_->barrier();
    if (rank_ != 0) std::memcpy(buf, s_->slots[0], bytes);
    s_->barrier();
  }

  void abort() override { s_->abort(); }

 private:
  std::shared_ptr<Shared> s_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Collective>> make_in_process_group(int size) {
  if (size < 1) throw Error("a tensor parallel group needs at least one rank");
  auto shared = std::make_shared<Shared>(size);
  std::vector<std::unique_ptr<Collective>> members;
  for (int r = 0; r < size; r++) members.push_back(std::make_unique<InProcessMember>(shared, r));
  return members;
}

}  // namespace grpst
