/* Training-time augmentation of float [N,C,H,W] batches, after preprocessing: torchvision's
 * RandomResizedCrop((H, W), scale=(0.08, 1), ratio=(3/4, 4/3)) and RandomHorizontalFlip(0.5),
 * drawn from the run's seeded generator. Unlike torchvision, the crop is taken from the image
 * as the teacher sees it (resized and center-cropped) rather than from the original file, and
 * resized back with plain bilinear sampling (a crop is never larger than the output, so no
 * antialiasing is needed). */
#include "od_onnx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* torchvision's RandomResizedCrop.get_params: 10 tries, then the whole image's central part at
 * the nearest allowed ratio. */
static void crop_params(int64_t H, int64_t W, od_rng *rng, int64_t *top, int64_t *left, int64_t *h,
                        int64_t *w) {
    double area = (double)H * (double)W, lo = log(3.0 / 4), hi = log(4.0 / 3);
    for (int t = 0; t < 10; t++) {
        double target = area * (0.08 + 0.92 * od_rng_uniform(rng));
        double ratio = exp(lo + (hi - lo) * od_rng_uniform(rng));
        int64_t cw = llround(sqrt(target * ratio)), ch = llround(sqrt(target / ratio));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *top = (int64_t)od_rng_below(rng, (uint64_t)(H - ch + 1));
            *left = (int64_t)od_rng_below(rng, (uint64_t)(W - cw + 1));
            *h = ch, *w = cw;
            return;
        }
    }
    double in_ratio = (double)W / (double)H;
    if (in_ratio < 3.0 / 4)
        *w = W, *h = llround(W / (3.0 / 4));
    else if (in_ratio > 4.0 / 3)
        *h = H, *w = llround(H * (4.0 / 3));
    else
        *w = W, *h = H;
    if (*h > H) *h = H;
    if (*w > W) *w = W;
    *top = (H - *h) / 2, *left = (W - *w) / 2;
}

void od_augment_batch(float *x, int64_t n, int64_t C, int64_t H, int64_t W, od_rng *rng) {
    if (n <= 0 || C <= 0 || H <= 0 || W <= 0) return;
    float *tmp = malloc(sizeof(float) * (size_t)(C * H * W));
    if (!tmp) return; /* augmentation is best effort: the batch stays as it is */
    for (int64_t s = 0; s < n; s++) {
        float *img = x + s * C * H * W;
        int64_t top, left, h, w;
        crop_params(H, W, rng, &top, &left, &h, &w);
        bool flip = od_rng_uniform(rng) < 0.5;
        memcpy(tmp, img, sizeof(float) * (size_t)(C * H * W));
        double sy = (double)h / (double)H, sx = (double)w / (double)W;
        for (int64_t y = 0; y < H; y++) {
            /* align_corners=False source coordinates, clamped to the crop */
            double fy = (y + 0.5) * sy - 0.5;
            if (fy < 0) fy = 0;
            int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
            float wy = (float)(fy - (double)y0);
            for (int64_t xo = 0; xo < W; xo++) {
                double fx = (xo + 0.5) * sx - 0.5;
                if (fx < 0) fx = 0;
                int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
                float wx = (float)(fx - (double)x0);
                int64_t dst = flip ? W - 1 - xo : xo;
                for (int64_t c = 0; c < C; c++) {
                    const float *p = tmp + c * H * W + (top)*W + left;
                    float a = p[y0 * W + x0], b = p[y0 * W + x1], cc = p[y1 * W + x0],
                          d = p[y1 * W + x1];
                    img[c * H * W + y * W + dst] =
                        (a * (1 - wx) + b * wx) * (1 - wy) + (cc * (1 - wx) + d * wx) * wy;
                }
            }
        }
    }
    free(tmp);
}
