// Request/reply between Communicators: replies, error replies, the eventfd, broadcast, limits, stop.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <string>
#include <thread>

#include "common/error.h"
#include "communicator/communicator.h"
#include "communicator/socket.h"
#include "responder.h"

namespace {

using namespace fl::comm;
using fl::comm::test_util::Responder;
using namespace std::chrono_literals;

struct Pair : ::testing::Test {
  void SetUp() override {
    server.start();
    client.start();
  }
  Communicator server, client;
};

TEST_F(Pair, RequestReply) {
  Responder r(server);
  EXPECT_EQ(client.request(server.address(), 7, "hello", 5.0).view(), "re:7:hello");
  EXPECT_EQ(client.request(server.address(), 8, "", 5.0).view(), "re:8:");
  std::string big(3 << 20, 'z');
  EXPECT_EQ(client.request(server.address(), 9, big, 5.0).size, big.size() + 5);
}

TEST_F(Pair, ErrorReplyCarriesPeerText) {
  Responder r(server);
  try {
    client.request(server.address(), 99, "why", 5.0);
    FAIL() << "expected IoError";
  } catch (const fl::TimeoutError&) {
    FAIL() << "an error reply is not a timeout";
  } catch (const fl::IoError& e) {
    EXPECT_STREQ(e.what(), "boom: why");
  }
}

TEST_F(Pair, ConcurrentRequestsShareOneConnection) {
  Responder r(server);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::string p = std::to_string(t) + "/" + std::to_string(i);
        if (client.request(server.address(), 1, p, 5.0).view() == "re:1:" + p) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 400);
}

TEST_F(Pair, EventFdSignalsPendingRequests) {
  std::thread requester(
      [&] { EXPECT_THROW(client.request(server.address(), 3, "x", 0.5), fl::TimeoutError); });
  pollfd pfd{server.fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  auto reqs = server.pollRequests(64);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].peer, client.address());  // named by its listening address, from the hello
  EXPECT_EQ(reqs[0].msgType, 3u);
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "eventfd must be drained once the queue is empty";
  requester.join();
  EXPECT_THROW(server.reply(reqs[0].id + 1000, "", ""), fl::EnforceError);
}

TEST_F(Pair, BroadcastReportsEachPeer) {
  Communicator other;
  other.start();
  Responder r1(server), r2(other);
  Socket probe = Socket::listenOn(Address{"127.0.0.1", 0}, 1);
  std::string dead = probe.localAddress().toString();
  probe.reset();
  auto results = client.broadcast({server.address(), dead, other.address()}, 5, "b", 5.0);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[0].payload.view(), "re:5:b");
  EXPECT_FALSE(results[1].ok);
  EXPECT_NE(results[1].error.find(dead), std::string::npos) << results[1].error;
  EXPECT_TRUE(results[2].ok);
}

TEST(CommLimits, ConnectionCapClosesExtraConnections) {
  CommunicatorOptions o;
  o.maxConnections = 1;
  Communicator server(o);
  server.start();
  auto deadline = Clock::now() + 5s;
  Socket first = Socket::connectTo(Address::parse(server.address()), deadline);
  std::this_thread::sleep_for(50ms);  // let the loop accept the first one
  Socket second = Socket::connectTo(Address::parse(server.address()), deadline);
  pollfd pfd{second.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  char c;
  EXPECT_LE(::recv(second.fd(), &c, 1, 0), 0) << "the extra connection must be closed";
  pollfd alive{first.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&alive, 1, 100), 0) << "the first connection must stay open";
}

TEST(CommLifecycle, StopIsIdempotentAndFailsWaitersAtOnce) {
  Communicator server, client;
  server.start();
  client.start();
  std::thread stopper([&] {
    pollfd pfd{server.fileno(), POLLIN, 0};
    ::poll(&pfd, 1, 5000);
    server.stop();
    server.stop();
  });
  auto start = Clock::now();
  EXPECT_THROW(client.request(server.address(), 1, "x", 10.0), fl::IoError);
  EXPECT_LT(Clock::now() - start, 3s) << "peer death must not wait for the timeout";
  stopper.join();
  client.stop();
  client.stop();
  EXPECT_THROW(client.request(server.address(), 1, "x", 1.0), fl::IoError);
}

TEST(CommLifecycle, RequestBeforeStartIsAnError) {
  Communicator c;
  EXPECT_THROW(c.request(c.address(), 1, "", 1.0), fl::EnforceError);
}

}  // namespace
