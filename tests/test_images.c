/* Image folders: layout, splits, class names, every image mode, corrupt files and --strict, the
 * decoded store in RAM, on disk and cached, and agreement with torchvision's transforms.
 *
 * usage: test_images DIR   (DIR written by tests/images_make.py; tests/t_images.sh does both)
 * Without DIR only the checks that need no files run. */
#include "image_internal.h"
#include "od_onnx.h"
#include "test_check.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *root;

static void path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", root, name);
}

/* Loads DIR/name with o; status returned, err filled. */
static od_status load(const char *name, const od_image_options *o, od_data_split *d,
                      od_error *err) {
    char p[4096];
    path(p, sizeof p, name);
    return od_data_load_ex(p, o, d, err);
}

/* Max |ours - reference| over a whole set, ours as ToTensor gives it (x / 255). */
static double max_diff(const od_dataset *d, const char *npy, int64_t *exact) {
    char p[4096];
    path(p, sizeof p, npy);
    od_tensor ref = {0};
    od_error err = {0};
    if (od_npy_read(p, &ref, &err)) {
        printf("%s\n", err.message);
        return 1e9;
    }
    int64_t ss = od_dataset_sample_size(d);
    double worst = 0;
    *exact = 0;
    if (od_tensor_count(&ref) != d->n * ss || ref.dtype != OD_DTYPE_FLOAT) {
        printf("%s: %lld values, ours %lld\n", npy, (long long)od_tensor_count(&ref),
               (long long)(d->n * ss));
        worst = 1e9;
    } else {
        const float *r = ref.data;
        for (int64_t i = 0; i < d->n * ss; i++) {
            double diff = fabs(d->u8[i] / 255.0 - r[i]);
            if (diff > worst) worst = diff;
            if (diff < 1e-6) (*exact)++;
        }
    }
    od_tensor_clear(&ref);
    return worst;
}

/* 20 images of every mode against torchvision, RGB and grey. */
static void check_torchvision(void) {
    od_image_options o;
    od_image_options_default(&o);
    o.resize = 40, o.height = 32, o.width = 36, o.test_fraction = 0, o.shuffle = false;
    od_data_split d;
    od_error err = {0};
    od_status st = load("ref", &o, &d, &err);
    check(!st, "ref loads", "%s", err.message);
    if (st) return;
    check(d.train.n == 20 && d.test.n == 0 && d.n_skipped == 0, "ref: 20 samples",
          "%lld train, %lld test, %lld skipped (%s)", (long long)d.train.n, (long long)d.test.n,
          (long long)d.n_skipped, d.skipped);
    check(d.train.rank == 3 && d.train.dims[0] == 3 && d.train.dims[1] == 32 &&
              d.train.dims[2] == 36,
          "ref: [3,32,36]", "[%lld,%lld,%lld]", (long long)d.train.dims[0],
          (long long)d.train.dims[1], (long long)d.train.dims[2]);
    static const char *const names[] = {"cat", "dog", "emu", "yak"};
    bool names_ok = d.n_class_names == 4 && d.train.n_classes == 4;
    for (int i = 0; names_ok && i < 4; i++)
        names_ok = !strcmp(d.class_names[i], names[i]);
    check(names_ok, "class names from the folders, sorted", "%d names", d.n_class_names);
    bool labels_ok = true;
    for (int64_t i = 0; i < d.train.n; i++)
        labels_ok &= d.train.labels[i] == i / 5;
    check(labels_ok, "labels in class order", "-");
    int64_t exact;
    double worst = max_diff(&d.train, "ref_rgb.npy", &exact);
    printf("torchvision RGB: max |diff| %.6f (%.3f/255), %lld of %lld values equal\n", worst,
           worst * 255, (long long)exact,
           (long long)(d.train.n * od_dataset_sample_size(&d.train)));
    check(worst <= 1.0 / 255 + 1e-6, "RGB within 1/255 of torchvision", "%g", worst);
    od_data_split_clear(&d);

    o.channels = 1, o.resize = 37, o.height = o.width = 33;
    st = load("ref", &o, &d, &err);
    check(!st, "ref loads grey", "%s", err.message);
    if (st) return;
    worst = max_diff(&d.train, "ref_grey.npy", &exact);
    printf("torchvision grey: max |diff| %.6f (%.3f/255), %lld of %lld values equal\n", worst,
           worst * 255, (long long)exact,
           (long long)(d.train.n * od_dataset_sample_size(&d.train)));
    check(worst <= 1.0 / 255 + 1e-6, "grey within 1/255 of torchvision", "%g", worst);
    od_data_split_clear(&d);

    /* 16-bit grey: the high byte (PIL would clip the 16-bit value at 255 instead) */
    od_image_options_default(&o);
    o.channels = 1, o.test_fraction = 0, o.shuffle = false;
    st = load("grey16", &o, &d, &err);
    check(!st, "16-bit grey loads", "%s", err.message);
    if (!st) {
        worst = max_diff(&d.train, "grey16.npy", &exact);
        check(worst < 1e-6, "16-bit grey keeps the high byte", "%g", worst);
    }
    od_data_split_clear(&d);
}

static void check_split(void) {
    od_image_options o;
    od_image_options_default(&o);
    o.channels = 1, o.shuffle = false;
    od_data_split d;
    od_error err = {0};
    od_status st = load("split", &o, &d, &err);
    check(!st, "train/ val/ loads", "%s", err.message);
    if (st) return;
    check(d.train.n == 9 && d.test.n == 4, "train/ and val/ are the splits", "%lld, %lld",
          (long long)d.train.n, (long long)d.test.n);
    check(d.n_class_names == 3 && !strcmp(d.class_names[2], "c"), "classes from train/", "%d",
          d.n_class_names);
    /* val/a holds value 10*0+k... written as class index on disk order c=0, a=1: a's pixels 10+k */
    bool ok = d.test.n == 4 && d.test.labels[0] == 0 && d.test.labels[2] == 2 &&
              d.test.u8[0] == 10 && d.test.u8[2 * 64] == 0;
    check(ok, "val labels mapped by class name", "labels %d %d", d.test.n ? d.test.labels[0] : -1,
          d.test.n > 2 ? d.test.labels[2] : -1);
    od_data_split_clear(&d);

    /* no train/: a seeded split, the same for the same seed, another for another */
    od_data_split a, b, c;
    od_image_options_default(&o);
    o.resize = 20, o.height = o.width = 16, o.test_fraction = 0.25;
    st = load("ref", &o, &a, &err) || load("ref", &o, &b, &err);
    o.seed = 99;
    st = st || load("ref", &o, &c, &err);
    check(!st, "seeded splits load", "%s", err.message);
    if (!st) {
        check(a.train.n == 15 && a.test.n == 5, "test_fraction 0.25 of 20", "%lld %lld",
              (long long)a.train.n, (long long)a.test.n);
        size_t bytes = (size_t)(a.test.n * od_dataset_sample_size(&a.test));
        check(b.test.n == a.test.n && !memcmp(a.test.u8, b.test.u8, bytes), "same seed, same split",
              "-");
        check(c.test.n == a.test.n && memcmp(a.test.u8, c.test.u8, bytes) != 0,
              "another seed, another split", "-");
    }
    od_data_split_clear(&a);
    od_data_split_clear(&b);
    od_data_split_clear(&c);

    /* the default order is shuffled: the first 8 of 20 samples (5 per class) span 3+ classes */
    od_image_options_default(&o);
    o.resize = 20, o.height = o.width = 16, o.test_fraction = 0;
    st = load("ref", &o, &a, &err);
    check(!st, "shuffled load", "%s", err.message);
    if (!st) {
        int seen[4] = {0}, distinct = 0;
        for (int64_t i = 0; i < 8 && i < a.train.n; i++)
            distinct += !seen[a.train.labels[i]]++;
        check(distinct >= 3, "shuffled: the first samples hold several classes",
              "%d classes in the first 8", distinct);
    }
    od_data_split_clear(&a);
}

static void check_corrupt(void) {
    od_image_options o;
    od_image_options_default(&o);
    o.resize = 8, o.height = o.width = 8, o.test_fraction = 0, o.shuffle = false;
    od_data_split d;
    od_error err = {0};
    od_status st = load("corrupt", &o, &d, &err);
    check(!st, "a folder with corrupt files loads", "%s", err.message);
    if (!st) {
        check(d.train.n == 6 && d.n_skipped == 3, "3 bad files skipped, 6 kept",
              "%lld kept, %lld skipped", (long long)d.train.n, (long long)d.n_skipped);
        check(strstr(d.skipped, "1trunc.png") != NULL, "the first bad file is named", "%s",
              d.skipped);
        bool labels_ok = d.train.n == 6 && d.train.labels[2] == 0 && d.train.labels[3] == 1 &&
                         d.train.u8[2 * 192] == 80;
        check(labels_ok, "the kept samples keep their labels and pixels", "-");
    }
    od_data_split_clear(&d);
    o.strict = true;
    st = load("corrupt", &o, &d, &err);
    check(st && strstr(err.message, "1trunc.png") && strstr(err.message, "strict"),
          "strict: an error naming the file", "%d %s", st, err.message);
    od_data_split_clear(&d);
}

/* The same data from RAM, from an unlinked file, and from a cache file written then reused. */
static void check_store(void) {
    od_image_options o;
    od_image_options_default(&o);
    o.resize = 40, o.height = 32, o.width = 36, o.test_fraction = 0.2;
    od_data_split ram, file, cached, again;
    od_error err = {0};
    char cache[] = "/tmp/od-cache-XXXXXX";
    if (!mkdtemp(cache)) return;
    od_status st = load("ref", &o, &ram, &err);
    o.ram_limit = 0;
    st = st || load("ref", &o, &file, &err);
    o.cache_dir = cache;
    st = st || load("ref", &o, &cached, &err) || load("ref", &o, &again, &err);
    check(!st, "stores load", "%s", err.message);
    if (!st) {
        size_t bytes = (size_t)(ram.train.n * od_dataset_sample_size(&ram.train));
        check(!ram.train.map_base && file.train.map_base && cached.train.map_base,
              "RAM below the limit, a mapped file above", "-");
        check(
            file.train.n == ram.train.n && !memcmp(ram.train.u8, file.train.u8, bytes) &&
                !memcmp(ram.train.labels, file.train.labels, sizeof(int32_t) * (size_t)ram.train.n),
            "file store equals RAM store", "-");
        check(again.train.n == ram.train.n && !memcmp(ram.train.u8, again.train.u8, bytes) &&
                  again.test.n == ram.test.n,
              "cache reused, same data", "-");
        int files = 0;
        DIR *dir = opendir(cache);
        for (struct dirent *e; dir && (e = readdir(dir));)
            if (e->d_name[0] != '.') files++;
        if (dir) closedir(dir);
        check(files == 2, "one cache file per split, no temporaries", "%d files", files);
        /* filling a batch from the mapped store gives the same floats */
        od_preprocess pre;
        od_preprocess_default(&pre);
        int64_t idx[3] = {4, 0, 7}, ss = od_dataset_sample_size(&ram.train);
        float *x = malloc(sizeof(float) * (size_t)(3 * ss)),
              *y = malloc(sizeof(float) * (size_t)(3 * ss));
        od_dataset_fill(&ram.train, &pre, idx, 3, x);
        od_dataset_fill(&again.train, &pre, idx, 3, y);
        od_dataset_fill(&again.train, &pre, idx, 3,
                        y); /* pages dropped by the first fill come back */
        check(!memcmp(x, y, sizeof(float) * (size_t)(3 * ss)), "fill from a mapped store", "-");
        free(x), free(y);
    }
    od_data_split_clear(&ram);
    od_data_split_clear(&file);
    od_data_split_clear(&cached);
    od_data_split_clear(&again);
    DIR *dir = opendir(cache);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", cache, e->d_name);
        if (e->d_name[0] != '.') unlink(p);
    }
    if (dir) closedir(dir);
    rmdir(cache);
}

/* Needs no files: the output size and crop offsets as torchvision computes them. */
static void check_geometry(void) {
    int64_t w, h;
    od_image_resized_size(500, 375, 256, &w, &h);
    check(w == 341 && h == 256, "Resize(256) of 500x375", "%lldx%lld", (long long)w, (long long)h);
    od_image_resized_size(13, 17, 40, &w, &h);
    check(w == 40 && h == 52, "Resize(40) of 13x17", "%lldx%lld", (long long)w, (long long)h);
    /* 1x5 image, crop 2 wide: offset round(1.5) = 2; crop 7 wide pads 1 on the left */
    uint8_t px[5] = {1, 2, 3, 4, 5}, o[7];
    od_image im = {5, 1, 1, px};
    od_image_center_crop_chw(&im, 1, 2, o);
    check(o[0] == 3 && o[1] == 4, "crop offset rounds half to even", "%d %d", o[0], o[1]);
    od_image_center_crop_chw(&im, 1, 7, o);
    check(o[0] == 0 && o[1] == 1 && o[5] == 5 && o[6] == 0,
          "crop larger than the image pads with 0", "%d %d %d", o[0], o[1], o[6]);
    od_image out;
    od_error err = {0};
    uint8_t flat[16];
    memset(flat, 77, sizeof flat);
    od_image f = {4, 4, 1, flat};
    check(!od_image_resize(&f, 3, 7, &out, &err) && out.px[0] == 77 && out.px[20] == 77,
          "resizing a flat image keeps it flat", "-");
    od_image_free(&out);
    uint8_t junk[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3};
    check(od_image_decode(junk, sizeof junk, "junk.png", 3, &out, &err) &&
              strstr(err.message, "junk.png"),
          "junk PNG: error names it", "%s", err.message);
    check(od_image_decode((const uint8_t *)"BM......", 8, "x.bmp", 3, &out, &err) ==
              OD_STATUS_UNSUPPORTED,
          "BMP unsupported", "-");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_geometry();
    if (argc > 1) {
        root = argv[1];
        check_torchvision();
        check_split();
        check_corrupt();
        check_store();
    }
    printf("images: %d passed, %d failed%s\n", n_pass, n_fail, argc > 1 ? "" : ", 4 skipped");
    return n_fail ? 1 : 0;
}
