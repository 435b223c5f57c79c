// A persistent pool of worker threads for the forward pass. The calling thread (the engine
// loop) works too, so a pool of N runs on N threads. Tasks are claimed one by one; the caller
// waits only for claimed tasks to finish, never for a worker to wake up, so a worker that the
// OS has descheduled (a busy machine) just takes no part in that job instead of stalling it.
// Workers spin briefly between jobs and then sleep. One job at a time: only the engine loop
// (or one test) calls it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace grpst {

class ThreadPool {
 public:
  /** num_threads counts the caller; 1 means no workers at all. */
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }

  /** Runs fn(task, thread) for every task in [0, n). `thread` < size() indexes per-thread scratch. */
  template <class F>
  void parallel_for(int n, F&& fn) {
    auto thunk = [](void* ctx, int task, int thread) { (*static_cast<F*>(ctx))(task, thread); };
    run(n, thunk, &fn);
  }

  /** Runs fn(part, parts) for part in [0, size()): a static split into one part per thread. */
  template <class F>
  void on_all(F&& fn) {
    const int parts = num_threads_;
    parallel_for(parts, [&](int task, int) { fn(task, parts); });
  }

 private:
  using Thunk = void (*)(void*, int, int);

  // Job descriptors alternate between two slots; `gen` doubles as a sequence lock so a worker
  // that wakes up late can tell a stale slot from the current one.
  struct Job {
    std::atomic<uint64_t> gen{0};
    std::atomic<int> n{0};
    std::atomic<Thunk> thunk{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<int> done{0};
  };

  void run(int n, Thunk thunk, void* ctx);
  void worker_main(int index);
  /** Claims and runs tasks of job `gen` until none are left. */
  void work(uint64_t gen, int thread);

  int num_threads_;
  std::vector<std::thread> workers_;
  Job jobs_[2];
  // High 32 bits: the current job's generation; low 32 bits: its next unclaimed task.
  std::atomic<uint64_t> state_{0};
  uint64_t generation_ = 0;  // caller only
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

/** Splits [0, n) into `parts` contiguous ranges, the first ones one longer; range `i` is returned. */
inline void split_range(int n, int parts, int i, int& begin, int& end) {
  int base = n / parts, extra = n % parts;
  begin = i * base + (i < extra ? i : extra);
  end = begin + base + (i < extra ? 1 : 0);
}

}  // namespace grpst
