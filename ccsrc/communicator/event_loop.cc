// EventLoop implementation: epoll_wait loop and eventfd wakeups.
#include "communicator/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "common/error.h"

namespace fl::comm {
namespace {
constexpr uint64_t kWakeId = 0;
constexpr int kMaxEvents = 64;
}  // namespace

EventLoop::EventLoop() {
  epoll_ = Socket(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) throw IoError(FL_ERROR_MSG(errnoText("epoll_create1", errno)));
  wakeFd_ = Socket(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wakeFd_.valid()) throw IoError(FL_ERROR_MSG(errnoText("eventfd", errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, wakeFd_.fd(), &ev) != 0) {
    throw IoError(FL_ERROR_MSG(errnoText("epoll_ctl", errno)));
  }
}

EventLoop::~EventLoop() { stop(); }

void EventLoop::start() {
  std::lock_guard<std::mutex> lock(mu_);
  FL_ENFORCE(!started_, "event loop already started");
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

void EventLoop::stop() {
  stopping_ = true;
  wake();
  if (inLoopThread()) return;
  std::unordered_map<uint64_t, Entry> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (joined_) return;
    joined_ = true;
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  dropped.swap(entries_);
}

uint64_t EventLoop::add(int fd, uint32_t events, std::shared_ptr<EventHandler> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw IoError(FL_ERROR_MSG("communicator stopped"));
  uint64_t id = nextId_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw IoError(FL_ERROR_MSG(errnoText("epoll_ctl(ADD)", errno)));
  }
  entries_.emplace(id, Entry{fd, std::move(handler)});
  return id;
}

void EventLoop::modify(uint64_t id, uint32_t events) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  (void)::epoll_ctl(epoll_.fd(), EPOLL_CTL_MOD, it->second.fd, &ev);
}

void EventLoop::remove(uint64_t id) {
  std::shared_ptr<EventHandler> last;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  (void)::epoll_ctl(epoll_.fd(), EPOLL_CTL_DEL, it->second.fd, nullptr);
  last = std::move(it->second.handler);
  entries_.erase(it);
}

void EventLoop::wake() {
  uint64_t one = 1;
  ssize_t rc = ::write(wakeFd_.fd(), &one, sizeof(one));
  (void)rc;  // EAGAIN means a wakeup is already pending
}

void EventLoop::run() {
  threadId_ = std::this_thread::get_id();
  std::vector<epoll_event> events(kMaxEvents);
  while (!stopping_) {
    int n = ::epoll_wait(epoll_.fd(), events.data(), kMaxEvents, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < n && !stopping_; ++i) {
      uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t count = 0;
        ssize_t rc = ::read(wakeFd_.fd(), &count, sizeof(count));
        (void)rc;
        continue;
      }
      std::shared_ptr<EventHandler> handler;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = entries_.find(id);
        if (it != entries_.end()) handler = it->second.handler;
      }
      if (!handler) continue;
      try {
        handler->onEvents(events[i].events);
      } catch (const std::exception& e) {
        // Handlers report their own failures; this only keeps the I/O thread alive.
        std::fprintf(stderr, "[%s:%d] WARN event handler failed: %s\n", __FILE__, __LINE__, e.what());
      }
    }
  }
}

}  // namespace fl::comm
