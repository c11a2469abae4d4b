/*
 * golden.h -- helpers shared by the tests that read the reference outputs in
 * test/data/models/<name>/expected*.json.  Include after <cjson/cJSON.h> and
 * ouro.h.
 */
#ifndef OURO_TEST_GOLDEN_H
#define OURO_TEST_GOLDEN_H

#include <stdlib.h>
#include <string.h>

/* Copies a JSON array of integers into a malloc'd array; returns its length. */
static int json_ints(const cJSON *a, int32_t **out) __attribute__((unused));
static int json_ints(const cJSON *a, int32_t **out)
{
    int n = cJSON_GetArraySize(a);
    *out = malloc((size_t)(n > 0 ? n : 1) * sizeof **out);
    for (int i = 0; i < n; i++)
        (*out)[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return n;
}

/* Parses a mode name of expected.json ("default", "step2", "q0.5",
 * "weighted") into an exit choice. */
static ouro_exit mode_exit(const char *mode) __attribute__((unused));
static ouro_exit mode_exit(const char *mode)
{
    ouro_exit ex = { .kind = OURO_EXIT_DEFAULT };
    if (strncmp(mode, "step", 4) == 0) {
        ex.kind = OURO_EXIT_STEP;
        ex.step = atoi(mode + 4);
    } else if (mode[0] == 'q') {
        ex.kind = OURO_EXIT_THRESHOLD;
        ex.threshold = (float)atof(mode + 1);
    } else if (strcmp(mode, "weighted") == 0) {
        ex.kind = OURO_EXIT_WEIGHTED;
    }
    return ex;
}

#endif
