/* libFuzzer target: one image file from arbitrary bytes through the decoders (libpng,
 * libjpeg-turbo, our EXIF reader) and the transforms (PIL's bilinear resize, the center crop),
 * in grey and RGB. The first byte picks the resize and crop; the rest is the file.
 *
 *   make fuzz SECONDS=60     (builds build-fuzz/fuzz_image, runs it on seeds of every mode) */
#include "fuzz_common.h"
#include "image_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* 16 megapixels: the refusal of larger ones is tested, and a decode stays within the
     * fuzzer's time limit under the sanitizers (a 175-megapixel JPEG took minutes there) */
    od_image_max_pixels = (int64_t)1 << 24;
    int64_t resize = 1 + data[0] % 40, crop = 1 + (data[0] / 40) % 7 * 5;
    for (int channels = 1; channels <= 3; channels += 2) {
        od_image im = {0}, rs = {0};
        od_error err = {0};
        if (od_image_decode(data + 1, size - 1, "fuzz", channels, &im, &err)) {
            fuzz_check_error(&err);
            continue;
        }
        if (im.w * im.h <= (1 << 20)) { /* the resize of a large image is slow too */
            int64_t w, h;
            od_image_resized_size(im.w, im.h, resize, &w, &h);
            if (w * h <= (1 << 20) && !od_image_resize(&im, w, h, &rs, &err)) {
                uint8_t *out = malloc((size_t)(channels * crop * crop));
                if (out) od_image_center_crop_chw(&rs, crop, crop, out);
                free(out);
            }
        }
        od_image_free(&rs);
        od_image_free(&im);
    }
    return 0;
}

FUZZ_STANDALONE_MAIN
