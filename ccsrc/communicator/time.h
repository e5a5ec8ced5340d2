// Monotonic deadlines for every blocking wait in the communicator.
#pragma once

#include <chrono>
#include <cmath>

namespace fl::comm {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// A deadline `seconds` from now; non-finite or huge values are clamped to one year.
inline Deadline deadlineAfter(double seconds) {
  constexpr double kMaxSeconds = 365.0 * 24 * 3600;
  if (!(seconds >= 0.0)) seconds = 0.0;
  if (seconds > kMaxSeconds) seconds = kMaxSeconds;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Milliseconds left until `d`, rounded up, never negative (suitable for poll/epoll_wait).
inline int remainingMs(Deadline d) {
  auto left = std::chrono::duration_cast<std::chrono::microseconds>(d - Clock::now()).count();
  if (left <= 0) return 0;
  auto ms = (left + 999) / 1000;
  return ms > 1000000000 ? 1000000000 : static_cast<int>(ms);
}

}  // namespace fl::comm
