// SHA-256 against the FIPS 180-4 / NIST test vectors, whole and fed in pieces.
#include <gtest/gtest.h>

#include <string>

#include <ATen/ATen.h>

#include "framework/core/input_hash.h"
#include "framework/core/sha256.h"

namespace copaint {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjk"
                       "lmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecesEqualTheWhole) {
  const std::string text(1000, 'x');
  for (size_t cut : {0, 1, 55, 56, 63, 64, 65, 999}) {
    Sha256 h;
    h.update(text.substr(0, cut));
    h.update(text.substr(cut));
    EXPECT_EQ(h.hex(), sha256_hex(text)) << "cut " << cut;
  }
}

// The image hash is the SHA-256 of the uint8 [H,W,C] bytes (red, green, blue of pixel (0,0)
// first), as documented in input_hash.h: a Python reader gets it from the stored reference.
TEST(InputHash, ImageHashIsTheUint8HwcBytes) {
  at::Tensor img = at::zeros({3, 1, 2});  // C=3, H=1, W=2
  img[0][0][0] = -1;                      // 0
  img[1][0][0] = 1;                       // 255
  img[2][0][1] = 1;                       // pixel (0,1) blue 255; zeros are 127.5 -> 128
  const unsigned char hwc[] = {0, 255, 128, 128, 128, 255};
  EXPECT_EQ(image_sha256(img), sha256_hex(hwc, sizeof hwc));
  // Values beyond [-1,1] are clamped as when stored; a change of one level changes the hash.
  at::Tensor over = img.clone();
  over[1][0][0] = 3;
  EXPECT_EQ(image_sha256(over), image_sha256(img));
  over[2][0][0] = 0.5;  // 128 -> 191
  EXPECT_NE(image_sha256(over), image_sha256(img));
}

TEST(InputHash, MaskHashIsItsBits) {
  at::Tensor m = at::zeros({1, 2, 2});
  m[0][0][1] = 1;
  const unsigned char bits[] = {0, 1, 0, 0};
  EXPECT_EQ(mask_sha256(m), sha256_hex(bits, sizeof bits));
  EXPECT_EQ(mask_sha256(m * 0.9), mask_sha256(m));  // bits, not float values
  EXPECT_THROW(mask_sha256(at::zeros({2, 2})), std::exception);
}

TEST(InputHash, FingerprintIsTheHashOfTheLinesInOrder) {
  const std::vector<InputHash> items = {{"aa", "m0"}, {"", "m1"}};
  EXPECT_EQ(input_set_fingerprint(items), sha256_hex("aa m0\nunreadable m1\n"));
  EXPECT_NE(input_set_fingerprint({items[1], items[0]}), input_set_fingerprint(items));
  EXPECT_EQ(input_set_fingerprint({}), sha256_hex(""));
}

}  // namespace
}  // namespace copaint
