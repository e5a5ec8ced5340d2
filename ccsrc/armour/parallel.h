// A tiny fork-join helper for the armour batch kernels (no pool: batches are rare and long).
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace fl::armour {

// Worker threads to use for `tasks` tasks when the caller asked for `requested` (0: one per hardware thread).
inline size_t WorkerCount(size_t tasks, int requested) {
  size_t want = requested > 0 ? static_cast<size_t>(requested) : std::thread::hardware_concurrency();
  if (want == 0) want = 1;
  return want < tasks ? want : (tasks == 0 ? 1 : tasks);
}

// Runs fn(i) for every i in [0, tasks) on `workers` threads (the calling thread is one of them); rethrows
// the first exception once all threads have stopped.
template <typename Fn>
void ParallelFor(size_t tasks, size_t workers, Fn&& fn) {
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    for (size_t i = next++; i < tasks; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next = tasks;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < workers; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace fl::armour
