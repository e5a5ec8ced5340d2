// EventLoop: one I/O thread running epoll, woken through an eventfd (for stop); handlers are looked up by id
// so a stale event for a removed (and possibly reused) fd is simply dropped.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "communicator/socket.h"

namespace fl::comm {

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  // Called on the loop thread with the epoll event mask; must not block.
  virtual void onEvents(uint32_t events) = 0;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void start();
  // Wakes and joins the I/O thread, then drops every handler (idempotent; a no-op on the loop thread
  // itself apart from requesting the stop).
  void stop();

  // Registers `fd` (owned by `handler`) for `events`; thread-safe. Returns the registration id.
  uint64_t add(int fd, uint32_t events, std::shared_ptr<EventHandler> handler);
  void modify(uint64_t id, uint32_t events);
  // Unregisters; the handler is released once no event for it is being processed.
  void remove(uint64_t id);
  bool inLoopThread() const { return std::this_thread::get_id() == threadId_.load(); }

 private:
  struct Entry {
    int fd;
    std::shared_ptr<EventHandler> handler;
  };

  void run();
  void wake();

  Socket epoll_;
  Socket wakeFd_;
  std::thread thread_;
  std::atomic<std::thread::id> threadId_{};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t nextId_ = 1;
  bool started_ = false;
  bool joined_ = false;
};

}  // namespace fl::comm
