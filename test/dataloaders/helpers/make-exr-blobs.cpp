// Writes the reference EXR files behind exr-blobs.ts with the OpenEXR library itself (an encoder independent of
// ours). Build and run (Debian: apt-get install libopenexr-dev):
//   g++ -std=c++17 make-exr-blobs.cpp $(pkg-config --cflags --libs OpenEXR) -o make-exr-blobs && ./make-exr-blobs OUT_DIR
// then base64 each OUT_DIR/*.exr into exr-blobs.ts. The pixel values are the formulas in exr-blobs.ts.
#include <OpenEXR/ImfChannelList.h>
#include <OpenEXR/ImfFrameBuffer.h>
#include <OpenEXR/ImfHeader.h>
#include <OpenEXR/ImfOutputFile.h>
#include <Imath/half.h>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace Imf;

// Y (FLOAT): 1 + x/4 + 8y, inf at (0..2, 0); A (HALF): (x + y) / 8; ID (UINT): 1000 * y + x.
// Every value is exact in float16 and in PXR24's 24-bit float.
static void writeMixed(const std::string &file, Compression c, int w, int h) {
  std::vector<float> y(w * h);
  std::vector<half> a(w * h);
  std::vector<uint32_t> id(w * h);
  for (int j = 0; j < h; j++)
    for (int i = 0; i < w; i++) {
      y[j * w + i] = (j == 0 && i < 3) ? std::numeric_limits<float>::infinity() : 1.0f + i / 4.0f + 8.0f * j;
      a[j * w + i] = half((i + j) / 8.0f);
      id[j * w + i] = 1000u * j + i;
    }
  Header hd(w, h);
  hd.compression() = c;
  hd.channels().insert("Y", Channel(FLOAT));
  hd.channels().insert("A", Channel(HALF));
  hd.channels().insert("ID", Channel(UINT));
  FrameBuffer fb;
  fb.insert("Y", Slice(FLOAT, (char *)y.data(), sizeof(float), sizeof(float) * w));
  fb.insert("A", Slice(HALF, (char *)a.data(), sizeof(half), sizeof(half) * w));
  fb.insert("ID", Slice(UINT, (char *)id.data(), sizeof(uint32_t), sizeof(uint32_t) * w));
  OutputFile out(file.c_str(), hd);
  out.setFrameBuffer(fb);
  out.writePixels(h);
}

// One HALF channel Z whose bit pattern at (x, y) is y * w + x: > 16384 distinct values in a 32-line PIZ block
// forces the 16-bit wavelet path.
static void writeRamp(const std::string &file, Compression c, int w, int h) {
  std::vector<half> z(w * h);
  for (int k = 0; k < w * h; k++) z[k].setBits(uint16_t(k));
  Header hd(w, h);
  hd.compression() = c;
  hd.channels().insert("Z", Channel(HALF));
  FrameBuffer fb;
  fb.insert("Z", Slice(HALF, (char *)z.data(), sizeof(half), sizeof(half) * w));
  OutputFile out(file.c_str(), hd);
  out.setFrameBuffer(fb);
  out.writePixels(h);
}

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : ".";
  writeMixed(dir + "/mixed_piz.exr", PIZ_COMPRESSION, 37, 34);
  writeMixed(dir + "/mixed_pxr24.exr", PXR24_COMPRESSION, 37, 21);
  writeMixed(dir + "/mixed_rle.exr", RLE_COMPRESSION, 37, 5);
  writeMixed(dir + "/mixed_zip.exr", ZIP_COMPRESSION, 37, 21);
  writeMixed(dir + "/mixed_b44.exr", B44_COMPRESSION, 4, 4);
  writeRamp(dir + "/ramp_piz.exr", PIZ_COMPRESSION, 600, 32);
  return 0;
}
