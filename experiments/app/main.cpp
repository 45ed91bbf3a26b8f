// Entry point of the `copaint` executable: runs the command with its standard output through a
// buffer that remembers the first failed write, so that a full disk or /dev/full is an error
// (exit 1, named on stderr), not an empty or cut file and exit 0.
#include <cerrno>
#include <cstring>
#include <iostream>
#include <streambuf>
#include <string>
#include <vector>

#include <unistd.h>

#include "experiments/app/cli.h"

namespace {

/// A streambuf writing to a file descriptor; error() is the errno of the first failed write.
class FdOutBuf : public std::streambuf {
 public:
  explicit FdOutBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    for (const char* p = pbase(); p < pptr();) {
      const ssize_t n = ::write(fd_, p, static_cast<size_t>(pptr() - p));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (error_ == 0) error_ = n < 0 ? errno : EIO;
        setp(buf_, buf_ + sizeof buf_);  // dropped: the error is reported at exit
        return false;
      }
      p += n;
    }
    setp(buf_, buf_ + sizeof buf_);
    return true;
  }

  int fd_;
  int error_ = 0;
  char buf_[1 << 16];
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  FdOutBuf buf(STDOUT_FILENO);
  std::ostream out(&buf);
  if (::isatty(STDOUT_FILENO)) out.setf(std::ios::unitbuf);  // a terminal sees lines as they come
  int code = copaint::run_cli(args, out, std::cerr);
  out.flush();
  if (buf.error() != 0) {
    std::cerr << "copaint: cannot write the standard output: " << std::strerror(buf.error())
              << "\n";
    if (code == 0) code = 1;
  }
  return code;
}
