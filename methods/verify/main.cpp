// copaint_verify: `copaint verify` for builds without the command-line tool (core-only, e.g. on a
// GPU machine without OpenCV/Boost/HDF5/SQLite). Usage: copaint_verify [--device D] [verify args].
#include <iostream>
#include <string>
#include <vector>

#include "framework/core/error.h"
#include "methods/verify/verify_command.h"

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::string device = "auto";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--device" && i + 1 < argc) {
      device = argv[++i];
    } else {
      args.push_back(a);
    }
  }
  try {
    return copaint::run_verify(args, device, std::cout);
  } catch (const copaint::UsageError& e) {
    std::cerr << "copaint_verify: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "copaint_verify: " << e.what() << "\n";
    return 1;
  }
}
