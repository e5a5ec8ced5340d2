// All-reduce in one process, one thread (and Communicator) per rank: exact sums over 1..8 ranks and
// several sizes, both dtypes, multi-segment frames, early arrivals, and stalled or dead peers.
#include <gtest/gtest.h>

#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "communicator/allreduce.h"
#include "communicator/communicator.h"

namespace {

using namespace fl::comm;
using namespace std::chrono_literals;

struct Group {
  explicit Group(size_t n) {
    for (size_t r = 0; r < n; ++r) {
      comms.push_back(std::make_unique<Communicator>());
      comms.back()->start();
      addrs.push_back(comms.back()->address());
    }
  }
  // Runs fn(rank) on one thread per rank and rethrows the first failure (gloo BaseTest::spawn).
  template <typename Fn>
  void spawn(Fn fn) {
    std::vector<std::thread> threads;
    std::exception_ptr first;
    std::mutex mu;
    for (size_t r = 0; r < comms.size(); ++r) {
      threads.emplace_back([&, r] {
        try {
          fn(r);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    if (first) std::rethrow_exception(first);
  }
  std::vector<std::unique_ptr<Communicator>> comms;
  std::vector<std::string> addrs;
};

// Integer-valued inputs keep every sum exact in float32.
template <typename T>
std::vector<T> input(size_t n, size_t rank) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<T>(i % 1000) + static_cast<T>(rank);
  return v;
}

template <typename T>
T expected(size_t i, size_t ranks) {
  return static_cast<T>((i % 1000) * ranks + ranks * (ranks - 1) / 2);
}

template <typename T>
void runAllreduce(size_t ranks, size_t count, size_t segmentBytes, uint64_t tag = 1) {
  Group g(ranks);
  std::vector<std::vector<T>> data(ranks);
  for (size_t r = 0; r < ranks; ++r) data[r] = input<T>(count, r);
  g.spawn([&](size_t r) {
    AllreduceOptions o;
    o.group = g.addrs;
    o.rank = r;
    o.data = data[r].data();
    o.count = count;
    o.dtype = sizeof(T) == 8 ? DataType::kFloat64 : DataType::kFloat32;
    o.tag = tag;
    o.timeoutSec = 20;
    o.segmentBytes = segmentBytes;
    allreduce(*g.comms[r], o);
  });
  for (size_t r = 0; r < ranks; ++r) {
    for (size_t i = 0; i < count; ++i) {
      ASSERT_EQ(data[r][i], expected<T>(i, ranks)) << "Mismatch at index " << i << " on rank " << r;
    }
  }
}

class AllreduceSweep : public ::testing::TestWithParam<std::tuple<size_t, size_t>> {};

TEST_P(AllreduceSweep, ExactSumFloat32) {
  auto [ranks, count] = GetParam();
  runAllreduce<float>(ranks, count, kDefaultSegmentBytes);
}

INSTANTIATE_TEST_SUITE_P(RanksBySize, AllreduceSweep,
                         ::testing::Combine(::testing::Range<size_t>(1, 9),
                                            ::testing::Values<size_t>(0, 1, 7, 4096, 1000000)));

TEST(CommAllreduce, Float64) { runAllreduce<double>(3, 4096, kDefaultSegmentBytes); }

TEST(CommAllreduce, ManySmallSegments) {
  runAllreduce<float>(3, 4097, 64);
  runAllreduce<double>(4, 1000, 24);
}

TEST(CommAllreduce, RepeatedWithSameTagAndLateStarter) {
  Group g(3);
  std::vector<std::vector<float>> data(3);
  g.spawn([&](size_t r) {
    if (r == 2) std::this_thread::sleep_for(100ms);  // the others' frames arrive first and are buffered
    for (int round = 0; round < 3; ++round) {
      data[r] = input<float>(100, r);
      AllreduceOptions o;
      o.group = g.addrs;
      o.rank = r;
      o.data = data[r].data();
      o.count = 100;
      o.tag = 5;
      o.timeoutSec = 10;
      allreduce(*g.comms[r], o);
      for (size_t i = 0; i < 100; ++i) ASSERT_EQ(data[r][i], expected<float>(i, 3)) << "round " << round;
    }
  });
}

TEST(CommAllreduce, SizeMismatchIsAnError) {
  Group g(2);
  std::vector<float> a(10, 1.f), b(12, 1.f);
  EXPECT_THROW(g.spawn([&](size_t r) {
    AllreduceOptions o;
    o.group = g.addrs;
    o.rank = r;
    o.data = r == 0 ? a.data() : b.data();
    o.count = r == 0 ? a.size() : b.size();
    o.timeoutSec = 2;
    allreduce(*g.comms[r], o);
  }),
               fl::IoError);
}

TEST(CommAllreduce, AbsentPeerTimesOutNamingIt) {
  Group g(3);  // rank 2 is up but never joins
  const double kTimeout = 0.4;
  g.spawn([&](size_t r) {
    if (r == 2) return;
    std::vector<float> v(300, 1.f);
    AllreduceOptions o;
    o.group = g.addrs;
    o.rank = r;
    o.data = v.data();
    o.count = v.size();
    o.timeoutSec = kTimeout;
    auto start = Clock::now();
    try {
      allreduce(*g.comms[r], o);
      ADD_FAILURE() << "rank " << r << " should have failed";
    } catch (const fl::IoError& e) {
      EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2 * kTimeout + 0.2);
  });
}

TEST(CommAllreduce, DeadPeerFailsFast) {
  Group g(2);
  std::vector<float> v(1000, 1.f);
  g.comms[1]->stop();
  AllreduceOptions o;
  o.group = g.addrs;
  o.rank = 0;
  o.data = v.data();
  o.count = v.size();
  o.timeoutSec = 10;
  auto start = Clock::now();
  try {
    allreduce(*g.comms[0], o);
    FAIL() << "expected IoError";
  } catch (const fl::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(g.addrs[1]), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(CommAllreduce, CancelWakesAWaitingRankAtOnceAndLaterCallsFail) {
  Group g(2);  // rank 1 never joins; rank 0 would wait 10 s
  std::vector<float> v(5000, 1.f);
  AllreduceOptions o;
  o.group = g.addrs;
  o.rank = 0;
  o.data = v.data();
  o.count = v.size();
  o.tag = 77;
  o.timeoutSec = 10;
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    g.comms[0]->mailbox().cancel(77, "iteration 3 ended");
  });
  auto start = Clock::now();
  try {
    allreduce(*g.comms[0], o);
    ADD_FAILURE() << "expected IoError";
  } catch (const fl::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("iteration 3 ended"), std::string::npos) << e.what();
  }
  canceller.join();
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_THROW(allreduce(*g.comms[0], o), fl::IoError);  // a late call of the cancelled tag fails too
  o.tag = 78;                                            // other tags are unaffected
  g.spawn([&](size_t r) {
    std::vector<float> w(5000, static_cast<float>(r + 1));
    AllreduceOptions p = o;
    p.rank = r;
    p.data = w.data();
    allreduce(*g.comms[r], p);
    EXPECT_EQ(w[0], 3.f);
  });
}

TEST(CommAllreduce, BadOptionsAreEnforced) {
  Communicator c;
  c.start();
  float x = 1;
  AllreduceOptions o;
  o.data = &x;
  o.count = 1;
  EXPECT_THROW(allreduce(c, o), fl::EnforceError);  // empty group
  o.group = {c.address()};
  o.rank = 1;
  EXPECT_THROW(allreduce(c, o), fl::EnforceError);
  o.rank = 0;
  allreduce(c, o);  // group of one: no-op
  EXPECT_EQ(x, 1.f);
}

}  // namespace
