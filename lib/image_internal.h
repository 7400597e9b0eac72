/* Internal: one image file decoded and brought to a model's input, as torchvision does it
 * (PIL's Image.open(f).convert("RGB"), transforms.Resize(N), transforms.CenterCrop(H, W)).
 * image.c holds the decoders (libpng, libjpeg-turbo) and the transforms; image_folder.c the
 * folder layout, the splits, the decoded store and the worker threads. */
#ifndef OD_IMAGE_INTERNAL_H
#define OD_IMAGE_INTERNAL_H

#include "od_dataset.h"
#include "od_runtime.h"

#include <stddef.h>
#include <stdint.h>

/* 8-bit interleaved pixels, HWC, 1 (grey) or 3 (RGB) channels. */
typedef struct od_image {
    int64_t w, h;
    int c;
    uint8_t *px;
} od_image;

void od_image_free(od_image *im);

/* The one shard rule (od_image_options.shard): of n training samples, [lo, hi) are kept. false
 * when o asks for no shard (NULL, shards <= 1, or n 0): then all n. lib/dataset.c. */
bool od_shard_range(const od_image_options *o, int64_t n, int64_t *lo, int64_t *hi);

/* Images of more pixels are refused before anything is allocated (2^28; the fuzz target lowers it:
 * a 175-megapixel CMYK JPEG took 10 s to decode, longer than its time limit under the sanitizers). */
extern int64_t od_image_max_pixels;

/* Decodes a PNG or JPEG held in data[0..size) (the format from its first bytes) into channels
 * 1 or 3: grey, palette, RGB, RGBA, grey+alpha, 16-bit, CMYK/YCCK JPEG (Adobe polarity, as
 * PIL assumes) and the EXIF orientation of a JPEG applied. Alpha and PNG transparency are
 * dropped (PIL's convert("RGB")); 16-bit samples keep their high byte; RGB to grey is PIL's
 * L = (19595 R + 38470 G + 7471 B + 2^15) >> 16. Errors name `name`. */
od_status od_image_decode(const uint8_t *data, size_t size, const char *name, int channels,
                          od_image *out, od_error *err);

/* PIL's antialiased bilinear resize (Image.resize with BILINEAR, Pillow >= 7, 8-bit, two passes,
 * horizontal first, 22-bit fixed-point coefficients), bit for bit. */
od_status od_image_resize(const od_image *in, int64_t w, int64_t h, od_image *out, od_error *err);

/* torchvision's Resize(size) output size: the shorter side becomes size, the longer
 * int(size * long / short). */
void od_image_resized_size(int64_t w, int64_t h, int64_t size, int64_t *w_out, int64_t *h_out);

/* torchvision's CenterCrop((ch, cw)) written as CHW planes into out (c * ch * cw bytes): the
 * offset round((h - ch) / 2) (half to even, as Python), zero padding where the crop is larger. */
void od_image_center_crop_chw(const od_image *in, int64_t ch, int64_t cw, uint8_t *out);

/* A folder with sub-folders (then read as an image folder when nothing else is found there). */
bool od_image_folder_detect(const char *dir);
/* The image folder dir into out (see od_image_options in od_dataset.h); opt NULL: defaults. */
typedef struct od_image_options od_image_options;
typedef struct od_data_split od_data_split;
od_status od_image_folder_load(const char *dir, const od_image_options *opt, od_data_split *out,
                               od_error *err);

#endif
