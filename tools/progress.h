// A progress line on stderr for the long-running commands (check, bench): drawn only when
// stderr is a terminal, so that piped or captured output is exactly what it was without
// it. The line is redrawn in place (\r, then the text cut to the terminal's width so it
// never wraps, which would break the redraw) at most every `interval` seconds, and erased
// before anything else is printed (Clear) and at the end.
#pragma once

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace cellfeed::tools {

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ProgressLine(double interval_s = 0.1)
      : enabled_(isatty(fileno(stderr)) == 1), interval_(interval_s) {}
  ~ProgressLine() { Clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Whether a redraw is due: callers build the text only then, so that the line costs
  // nothing when stderr is not a terminal.
  bool Due(Clock::time_point now = Clock::now()) const {
    return enabled_ && (!drawn_ || now - last_ >= std::chrono::duration<double>(interval_));
  }

  void Draw(std::string text, Clock::time_point now = Clock::now()) {
    if (!enabled_) return;
    const size_t width = Width();
    if (width > 1 && text.size() > width - 1) {
      text.resize(width - 1);
      // not half a UTF-8 character (a path's)
      while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
      if (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0xC0) text.pop_back();
    }
    const size_t pad = shown_ > text.size() ? shown_ - text.size() : 0;
    std::fprintf(stderr, "\r%s%*s", text.c_str(), static_cast<int>(pad), "");
    if (pad) std::fprintf(stderr, "\r%s", text.c_str());
    std::fflush(stderr);
    shown_ = text.size();
    drawn_ = true;
    last_ = now;
  }

  // Erases the line (before printing a result or an error, and at the end); the next
  // Draw is due at once.
  void Clear() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r%*s\r", static_cast<int>(shown_), "");
    std::fflush(stderr);
    shown_ = 0;
    drawn_ = false;
  }

  bool enabled() const { return enabled_; }

 private:
  static size_t Width() {
    winsize ws{};
    if (ioctl(fileno(stderr), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
  }

  bool enabled_;
  double interval_;
  bool drawn_ = false;
  size_t shown_ = 0;
  Clock::time_point last_{};
};

}  // namespace cellfeed::tools
