#include "grpst/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GRPST_PAUSE() _mm_pause()
#else
#define GRPST_PAUSE() std::this_thread::yield()
#endif

namespace grpst {

namespace {
// Tens of microseconds of spinning: longer than the gap between the jobs of one step, far
// shorter than an idle engine's wait for requests.
constexpr int kSpinIterations = 4000;
constexpr uint64_t kIndexMask = 0xffffffffull;
}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  for (int i = 1; i < num_threads_; i++) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(uint64_t gen, int thread) {
  Job& job = jobs_[gen & 1];
  for (;;) {
    uint64_t s = state_.load(std::memory_order_acquire);
    if ((s >> 32) != gen) return;
    // Read the descriptor under its sequence number: unchanged before and after = consistent.
    if (job.gen.load(std::memory_order_acquire) != gen) return;
    const int n = job.n.load(std::memory_order_relaxed);
    Thunk thunk = job.thunk.load(std::memory_order_relaxed);
    void* ctx = job.ctx.load(std::memory_order_relaxed);
    if (job.gen.load(std::memory_order_acquire) != gen) return;
    const int task = int(s & kIndexMask);
    if (task >= n) return;
    // A claim only ever advances this generation's counter, never a newer job's.
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
    try {
      thunk(ctx, task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    job.done.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(int n, Thunk thunk, void* ctx) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) thunk(ctx, i, 0);
    return;
  }
  const uint64_t gen = ++generation_;
  Job& job = jobs_[gen & 1];
  job.gen.store(0, std::memory_order_release);  // slot being rewritten
  job.n.store(n, std::memory_order_relaxed);
  job.thunk.store(thunk, std::memory_order_relaxed);
  job.ctx.store(ctx, std::memory_order_relaxed);
  job.done.store(0, std::memory_order_relaxed);
  job.gen.store(gen, std::memory_order_release);
  error_ = nullptr;
  // seq_cst store then load, mirrored by the worker's increment then load: one of the two
  // always sees the other, so a worker about to sleep cannot miss this job's wake-up.
  state_.store(gen << 32, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  work(gen, 0);
  // Waiting for tasks other threads hold: spin a little, then yield the core, so that on a busy
  // machine a descheduled worker can finish its task on this core instead of us spinning.
  for (int spin = 0; job.done.load(std::memory_order_acquire) != n; spin++) {
    if (spin < kSpinIterations)
      GRPST_PAUSE();
    else
      std::this_thread::yield();
  }
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_main(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = state_.load(std::memory_order_acquire) >> 32;
    for (int spin = 0; gen == seen && spin < kSpinIterations; spin++) {
      GRPST_PAUSE();
      gen = state_.load(std::memory_order_acquire) >> 32;
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      wake_.wait(lock, [&] { return stop_.load() || (state_.load(std::memory_order_seq_cst) >> 32) != seen; });
      sleepers_.fetch_sub(1, std::memory_order_acq_rel);
      gen = state_.load(std::memory_order_acquire) >> 32;
    }
    if (stop_.load()) return;
    seen = gen;
    work(gen, index);
  }
}

}  // namespace grpst
