// Entry point of the `copaint` executable.
#include <iostream>
#include <string>
#include <vector>

#include "experiments/app/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return copaint::run_cli(args, std::cout, std::cerr);
}
