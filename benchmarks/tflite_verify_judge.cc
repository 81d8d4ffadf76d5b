// A development-only structural judge for tests/tflite_verify_agreement.py:
// flatc's generated VerifyModelBuffer (what LiteRT's loader runs) over files
// named one per stdin line, answering "1 path" (passes) or "0 path" per line.
// Never a runtime or CI dependency. Build (Debian: flatbuffers-compiler,
// libflatbuffers-dev), with schema.fbs as benchmarks/gen_tflite_schema_layout.py
// describes (flatc < 23 needs its `(deprecated)` enum-value attributes removed):
//   flatc --cpp -o build schema.fbs
//   g++ -O2 -std=c++17 -Ibuild benchmarks/tflite_verify_judge.cc -o build/judge
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "schema_generated.h"

int main() {
  std::string path;
  while (std::getline(std::cin, path)) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(d.data()), d.size());
    std::cout << (tflite::VerifyModelBuffer(v) ? 1 : 0) << " " << path << "\n";
  }
}
