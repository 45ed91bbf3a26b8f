// Writes stand-in weights for the FID Inception (metrics/inception.h): every tensor of
// pytorch-fid's network filled by fid_inception_formula_weights(), as .safetensors. NOT the
// network FID is defined with: scores computed with it are stand-ins for measuring the cost and
// the look of FID/KID tables without the 95 MB download, never FID. Usage:
//   build/benchmarks/write_standin_inception OUT.safetensors
#include <cstdio>
#include <exception>

#include "framework/checkpoint/checkpoint.h"
#include "metrics/inception.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
    return 2;
  }
  try {
    copaint::write_safetensors(argv[1], copaint::fid_inception_formula_weights());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_standin_inception: %s\n", e.what());
    return 1;
  }
  std::printf("wrote stand-in (formula) Inception weights to %s: not FID's network\n", argv[1]);
  return 0;
}
