// The paths tests and benchmarks read: the source tree, its fixtures, ../shared, the copaint CLI.
// They come from one generated TU (copaint_test_paths, CMakeLists.txt) instead of compile
// definitions, so no other test TU carries an absolute path and all of them hit ccache in a
// fresh clone (CCACHE_BASEDIR).
#pragma once

namespace copaint::test_paths {
const char* source_dir();    ///< the checkout
const char* fixtures_dir();  ///< tests/fixtures
const char* shared_dir();    ///< ../shared (golden data that a user's clone lacks)
const char* bin();           ///< the copaint executable; "" in a build without the CLI
}  // namespace copaint::test_paths

#define COPAINT_SOURCE_DIR (::copaint::test_paths::source_dir())
#define COPAINT_TEST_FIXTURES_DIR (::copaint::test_paths::fixtures_dir())
#define COPAINT_SHARED_DIR (::copaint::test_paths::shared_dir())
#define COPAINT_BIN (::copaint::test_paths::bin())
