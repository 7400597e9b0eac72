/* One image: PNG through libpng, JPEG through libjpeg-turbo, then the transforms torchvision
 * applies to a PIL image, reproduced to the byte where PIL defines them (see image_internal.h).
 * Every size a file claims is checked before it is allocated. */
#include "image_internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE without including it */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

/* Refuse images beyond this many pixels before allocating: 2^28 is a 16k x 16k photo. */
int64_t od_image_max_pixels = (int64_t)1 << 28;

void od_image_free(od_image *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}

static od_status image_alloc(od_image *im, int64_t w, int64_t h, int c, const char *name,
                             od_error *err) {
    if (w <= 0 || h <= 0 || w * h > od_image_max_pixels)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: %lldx%lld pixels (at most %lld pixels are read)", name,
                            (long long)w, (long long)h, (long long)od_image_max_pixels);
    im->px = malloc((size_t)(w * h * c));
    if (!im->px)
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory for %lldx%lld pixels",
                            name, (long long)w, (long long)h);
    im->w = w, im->h = h, im->c = c;
    return OD_STATUS_OK;
}

/* PIL's RGB -> L (ITU-R 601-2 luma in 16-bit fixed point). */
static uint8_t luma(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

/* Rows of src_c channels (1 or 3) to `channels` in place of dst (which may not alias src). */
static void convert_row(const uint8_t *src, int src_c, uint8_t *dst, int channels, int64_t w) {
    if (src_c == channels) {
        memcpy(dst, src, (size_t)(w * channels));
    } else if (src_c == 1) {
        for (int64_t x = 0; x < w; x++)
            dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
    } else {
        for (int64_t x = 0; x < w; x++)
            dst[x] = luma(src + 3 * x);
    }
}

/* ---- PNG ------------------------------------------------------------------------------------- */

typedef struct png_source {
    const uint8_t *data;
    size_t size, pos;
    char message[160];
    jmp_buf jmp;
} png_source;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    png_source *s = png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "the file ends early (truncated)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_source *s = png_get_error_ptr(png);
    snprintf(s->message, sizeof s->message, "%s", msg);
    longjmp(s->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg; /* benign chunk problems; PIL reads these files too */
}

static od_status decode_png(const uint8_t *data, size_t size, const char *name, int channels,
                            od_image *out, od_error *err) {
    png_source src = {.data = data, .size = size};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    /* volatile: changed between setjmp and a longjmp back */
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    od_status st = OD_STATUS_OK;
    if (!png || !info) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
        goto done;
    }
    if (setjmp(src.jmp)) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: not a readable PNG: %s", name,
                          src.message);
        goto done;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info);
    if ((int64_t)w * h > od_image_max_pixels) {
        st = image_alloc(out, w, h, channels, name, err);
        goto done;
    }
    /* to 8-bit grey or RGB: palettes expanded, low bits of 16-bit samples dropped (PIL keeps the
     * high byte of RGB;16B), alpha and tRNS ignored (PIL's convert("RGB") drops them) */
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int src_c = png_get_channels(png, info);
    if ((src_c != 1 && src_c != 3) || png_get_rowbytes(png, info) != (size_t)w * src_c) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: PNG colour type %d gives %d channels",
                          name, type, src_c);
        goto done;
    }
    rgb = malloc((size_t)w * h * src_c);
    rows = malloc(sizeof(png_bytep) * h);
    if (!rgb || !rows) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = rgb + (size_t)y * w * src_c;
    png_read_image(png, rows);
    if ((st = image_alloc(out, w, h, channels, name, err))) goto done;
    for (png_uint_32 y = 0; y < h; y++)
        convert_row(rows[y], src_c, out->px + (size_t)y * w * channels, channels, w);
done:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(rgb);
    free(rows);
    return st;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

typedef struct jpeg_fail {
    struct jpeg_error_mgr mgr;
    jmp_buf jmp;
    char message[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_fail *f = (jpeg_fail *)c->err;
    f->mgr.format_message(c, f->message);
    longjmp(f->jmp, 1);
}

static void jpeg_on_message(j_common_ptr c) {
    (void)c;
}

static unsigned get16(const uint8_t *p, bool le) {
    return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1];
}
static uint32_t get32(const uint8_t *p, bool le) {
    return le ? p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

/* The EXIF Orientation tag (1 to 8) of an APP1 "Exif\0\0" payload; 1 when absent or unreadable. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n < 14 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    p += 6, n -= 6;
    bool le = p[0] == 'I' && p[1] == 'I';
    if (!le && !(p[0] == 'M' && p[1] == 'M')) return 1;
    uint32_t ifd = get32(p + 4, le);
    if (ifd > n - 2) return 1;
    unsigned count = get16(p + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) break;
        if (get16(p + e, le) == 0x0112 && get16(p + e + 2, le) == 3) {
            unsigned v = get16(p + e + 8, le);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
}

/* PIL's ImageOps.exif_transpose: orientation 2..8 undone so the picture stands as viewers show it.
 * In tiles of 64 x 64 output pixels: a quarter turn reads the source by columns, and walked row
 * by row a 15113 x 11611 photograph missed the cache at every pixel (5 s; 0.3 s in tiles). */
static od_status apply_orientation(od_image *im, int orientation, const char *name, od_error *err) {
    if (orientation <= 1) return OD_STATUS_OK;
    bool swap = orientation >= 5;
    od_image t = {0};
    od_status st = image_alloc(&t, swap ? im->h : im->w, swap ? im->w : im->h, im->c, name, err);
    if (st) return st;
    const int64_t c = im->c, T = 64;
    /* source pixel of output (x, y): (x0 + x * dxx + y * dxy, y0 + x * dyx + y * dyy) */
    int64_t x0 = 0, y0 = 0, dxx = 0, dxy = 0, dyx = 0, dyy = 0;
    switch (orientation) {
    case 2: x0 = im->w - 1, dxx = -1, dyy = 1; break;
    case 3: x0 = im->w - 1, y0 = im->h - 1, dxx = -1, dyy = -1; break;
    case 4: y0 = im->h - 1, dxx = 1, dyy = -1; break;
    case 5: dxy = 1, dyx = 1; break;
    case 6: y0 = im->h - 1, dxy = 1, dyx = -1; break;
    case 7: x0 = im->w - 1, y0 = im->h - 1, dxy = -1, dyx = -1; break;
    default: x0 = im->w - 1, dxy = -1, dyx = 1; break; /* 8 */
    }
    const int64_t step = (dyx * im->w + dxx) * c; /* source bytes from one output pixel to the next in a row */
    for (int64_t ty = 0; ty < t.h; ty += T)
        for (int64_t tx = 0; tx < t.w; tx += T)
            for (int64_t y = ty; y < t.h && y < ty + T; y++) {
                int64_t x1 = tx + T < t.w ? tx + T : t.w;
                const uint8_t *src = im->px + ((y0 + tx * dyx + y * dyy) * im->w + (x0 + tx * dxx + y * dxy)) * c;
                uint8_t *dst = t.px + (y * t.w + tx) * c;
                for (int64_t x = tx; x < x1; x++, src += step, dst += c)
                    for (int64_t k = 0; k < c; k++) dst[k] = src[k];
            }
    od_image_free(im);
    *im = t;
    return OD_STATUS_OK;
}

static od_status decode_jpeg(const uint8_t *data, size_t size, const char *name, int channels,
                             od_image *out, od_error *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_fail fail;
    cinfo.err = jpeg_std_error(&fail.mgr);
    fail.mgr.error_exit = jpeg_on_error;
    fail.mgr.output_message = jpeg_on_message;
    uint8_t *volatile row = NULL, *volatile rgb = NULL;
    od_status st = OD_STATUS_OK;
    jpeg_create_decompress(&cinfo);
    if (setjmp(fail.jmp)) {
        od_image_free(out);
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: not a readable JPEG: %s", name,
                          fail.message);
        goto done;
    }
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&cinfo, TRUE);
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    int src_c;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK, src_c = 4;
    else if (cinfo.num_components == 1)
        cinfo.out_color_space = JCS_GRAYSCALE, src_c = 1;
    else if (cinfo.num_components == 3)
        cinfo.out_color_space = JCS_RGB, src_c = 3;
    else {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: JPEG with %d colour components", name,
                          cinfo.num_components);
        goto done;
    }
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1) orientation = exif_orientation(m->data, m->data_length);
    if ((int64_t)cinfo.image_width * cinfo.image_height > od_image_max_pixels) {
        st = image_alloc(out, cinfo.image_width, cinfo.image_height, channels, name, err);
        goto done;
    }
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != src_c) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: JPEG decodes to %d components", name,
                          cinfo.output_components);
        goto done;
    }
    int64_t w = cinfo.output_width, h = cinfo.output_height;
    if ((st = image_alloc(out, w, h, channels, name, err))) goto done;
    row = malloc((size_t)(w * 4));
    rgb = malloc((size_t)(w * 3));
    if (!row || !rgb) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", name);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        int64_t y = cinfo.output_scanline;
        JSAMPROW r = row;
        jpeg_read_scanlines(&cinfo, &r, 1);
        const uint8_t *src = row;
        int c = src_c;
        if (cmyk) {
            /* PIL reads CMYK JPEGs inverted ("CMYK;I", Adobe's polarity), then cmyk2rgb */
            for (int64_t x = 0; x < w; x++) {
                unsigned nk = row[4 * x + 3]; /* 255 - K, K = 255 - raw */
                for (int j = 0; j < 3; j++) {
                    unsigned v = 255 - row[4 * x + j], t = v * nk + 128;
                    int o = (int)nk - (int)(((t >> 8) + t) >> 8);
                    rgb[3 * x + j] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o);
                }
            }
            src = rgb, c = 3;
        }
        convert_row(src, c, out->px + y * w * channels, channels, w);
    }
    jpeg_finish_decompress(&cinfo);
    st = apply_orientation(out, orientation, name, err);
done:
    jpeg_destroy_decompress(&cinfo);
    free(row);
    free(rgb);
    if (st) od_image_free(out);
    return st;
}

od_status od_image_decode(const uint8_t *data, size_t size, const char *name, int channels,
                          od_image *out, od_error *err) {
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: %d channels asked (1 or 3)", name,
                            channels);
    if (size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(data, size, name, channels, out, err);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, size, name, channels, out, err);
    return od_error_set(err, OD_STATUS_UNSUPPORTED,
                        "%s: neither PNG nor JPEG (only these are read)", name);
}

/* ---- resize: Pillow's Resample.c for 8-bit images ----------------------------------------- */

#define PRECISION_BITS (32 - 8 - 2)

typedef struct coeffs {
    int ksize;
    int *bounds; /* [out][2]: first input index, count */
    int32_t *k;  /* [out][ksize] fixed point */
} coeffs;

static double bilinear(double x) {
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
}

static bool coeffs_make(int64_t in_size, int64_t out_size, coeffs *c) {
    double scale = (double)in_size / (double)out_size, filterscale = scale < 1 ? 1 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = malloc(sizeof(double) * (size_t)ksize);
    c->ksize = ksize;
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->k = calloc((size_t)(out_size * ksize), sizeof(int32_t));
    if (!pre || !c->bounds || !c->k) {
        free(pre);
        return false;
    }
    for (int64_t xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = (int)in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++)
            ww += pre[x] = bilinear((x + xmin - center + 0.5) * ss);
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0 ? pre[x] / ww : pre[x];
            c->k[xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                                   : 0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin, c->bounds[2 * xx + 1] = xmax;
    }
    free(pre);
    return true;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

static uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

od_status od_image_resize(const od_image *in, int64_t w, int64_t h, od_image *out, od_error *err) {
    memset(out, 0, sizeof *out);
    od_status st = image_alloc(out, w, h, in->c, "resize", err);
    if (st) return st;
    int C = in->c;
    bool need_h = w != in->w, need_v = h != in->h;
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    if (!coeffs_make(in->w, w, &ch) || !coeffs_make(in->h, h, &cv)) goto oom;
    /* the horizontal pass over the rows the vertical one reads, as Pillow */
    const uint8_t *src = in->px;
    int64_t src_w = in->w, row0 = 0;
    if (need_h) {
        int64_t first = need_v ? cv.bounds[0] : 0;
        int64_t last = need_v ? cv.bounds[2 * h - 2] + cv.bounds[2 * h - 1] : in->h;
        uint8_t *dst = need_v ? (tmp = malloc((size_t)((last - first) * w * C))) : out->px;
        if (!dst) goto oom;
        for (int64_t y = first; y < last; y++) {
            const uint8_t *r = in->px + y * in->w * C;
            uint8_t *o = dst + (y - first) * w * C;
            for (int64_t xx = 0; xx < w; xx++) {
                const int32_t *k = ch.k + xx * ch.ksize;
                int xmin = ch.bounds[2 * xx], n = ch.bounds[2 * xx + 1];
                for (int c = 0; c < C; c++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < n; x++)
                        ss += r[(xmin + x) * C + c] * k[x];
                    o[xx * C + c] = clip8(ss);
                }
            }
        }
        src = dst, src_w = w, row0 = first;
    }
    if (need_v) {
        for (int64_t yy = 0; yy < h; yy++) {
            const int32_t *k = cv.k + yy * cv.ksize;
            int ymin = cv.bounds[2 * yy] - (int)row0, n = cv.bounds[2 * yy + 1];
            uint8_t *o = out->px + yy * w * C;
            for (int64_t xc = 0; xc < w * C; xc++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < n; y++)
                    ss += src[(ymin + y) * src_w * C + xc] * k[y];
                o[xc] = clip8(ss);
            }
        }
    } else if (!need_h) {
        memcpy(out->px, in->px, (size_t)(w * h * C));
    }
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    return OD_STATUS_OK;
oom:
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    od_image_free(out);
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory resizing to %lldx%lld",
                        (long long)w, (long long)h);
}

void od_image_resized_size(int64_t w, int64_t h, int64_t size, int64_t *w_out, int64_t *h_out) {
    if (w <= h) {
        *w_out = size;
        *h_out = (int64_t)((double)size * (double)h / (double)w);
    } else {
        *h_out = size;
        *w_out = (int64_t)((double)size * (double)w / (double)h);
    }
    if (*w_out < 1) *w_out = 1;
    if (*h_out < 1) *h_out = 1;
}

/* Python's int(round((size - crop) / 2.0)) for size >= crop: halves to even. */
static int64_t crop_offset(int64_t size, int64_t crop) {
    if (crop > size) return -((crop - size) / 2); /* torchvision pads (crop - size) // 2 before */
    int64_t d = size - crop, q = d / 2;
    return (d & 1) && (q & 1) ? q + 1 : q;
}

void od_image_center_crop_chw(const od_image *in, int64_t ch, int64_t cw, uint8_t *out) {
    int64_t top = crop_offset(in->h, ch), left = crop_offset(in->w, cw);
    int C = in->c;
    for (int c = 0; c < C; c++)
        for (int64_t y = 0; y < ch; y++) {
            uint8_t *o = out + (c * ch + y) * cw;
            int64_t sy = y + top;
            for (int64_t x = 0; x < cw; x++) {
                int64_t sx = x + left;
                o[x] = sy >= 0 && sy < in->h && sx >= 0 && sx < in->w
                           ? in->px[(sy * in->w + sx) * C + c]
                           : 0;
            }
        }
}
