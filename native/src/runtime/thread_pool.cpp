#include "grpst/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GRPST_PAUSE() _mm_pause()
#else
#define GRPST_PAUSE() std::this_thread::yield()
#endif

namespace grpst {

namespace {
// About 50-100 microseconds of spinning: longer than the gap between the jobs of one step,
// much shorter than the gap between steps when the engine is idle.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads < 1 ? 1 : num_threads) {
  for (int i = 1; i < num_threads_; i++) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(int thread) {
  for (;;) {
    int task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= num_tasks_) break;
    try {
      thunk_(ctx_, task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::run(int n, Thunk thunk, void* ctx) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1) {
    for (int i = 0; i < n; i++) thunk(ctx, i, 0);
    return;
  }
  num_tasks_ = n;
  thunk_ = thunk;
  ctx_ = ctx;
  error_ = nullptr;
  next_task_.store(0, std::memory_order_relaxed);
  busy_workers_.store(num_threads_ - 1, std::memory_order_relaxed);
  {
    // Publishing under the lock pairs with the sleeping workers' predicate check.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(0);
  while (busy_workers_.load(std::memory_order_acquire) != 0) GRPST_PAUSE();
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_main(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; spin++) {
      GRPST_PAUSE();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    work(index);
    busy_workers_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace grpst
