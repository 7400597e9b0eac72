/* Inside the distillation: the teachers' logit cache and one training run over it, shared by
 * od_distill and the noise search (lib/noise_search.c), which trains many short runs on one cache. */
#ifndef OD_DISTILL_INTERNAL_H
#define OD_DISTILL_INTERNAL_H

#include "od_distill.h"

/* Training samples 0..n_all-1 are the labelled data's, n_all.. the unlabelled data's. */
typedef struct distill_cache {
    int64_t n, classes;
    float *train;   /* [n, classes]: the teachers' mean (one teacher: its logits) */
    float *each;    /* --teachers draw with several teachers: [n_each, n, classes]; else NULL */
    int n_each;
    float *test;    /* [test n, classes], the mean; NULL without a test set */
    double seconds; /* spent computing it */
} distill_cache;

void distill_cache_clear(distill_cache *c);

/* One run of od_distill: with an empty cache (train NULL) the teachers' logits are computed into
 * it and kept for the next run with the same data and teachers; eval_test false skips the test
 * set (the search chooses on the validation split alone). */
od_status distill_run(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                      const od_distill_options *opt, distill_cache *cache, bool eval_test, od_distill_result *res,
                      od_error *err);

/* The test set's accuracy and agreement of the student as it is, into res (and its kept epoch's
 * stats): for a run made with eval_test false whose student is kept after all. */
od_status distill_eval_test(od_model *student, const od_data_split *data, const od_preprocess *pre, const od_distill_options *opt,
                           const distill_cache *cache, od_distill_result *res, od_error *err);

/* --sigma auto, --alpha auto, --label-weight auto: successive halving over the candidates on the
 * validation split, the better of the last rung's 2 full-length runs kept (lib/noise_search.c). */
od_status noise_search(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                       const od_distill_options *opt, od_distill_result *res, od_error *err);

#endif
