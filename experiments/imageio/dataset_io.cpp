// The image-file reader of the datasets library, on top of read_image.
#include "experiments/imageio/dataset_io.h"

#include <ATen/ATen.h>

#include "datasets/image_file.h"
#include "experiments/imageio/image_io.h"

namespace copaint {

void install_image_file_reader() {
  set_image_file_reader([](const std::string& path, int64_t channels) {
    // read_image gives pixel / 127.5 - 1 in float; undo it exactly to the decoded 8-bit values.
    const at::Tensor x = read_image(path, channels, /*size=*/0);
    return x.add(1).mul(127.5).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
  });
}

}  // namespace copaint
