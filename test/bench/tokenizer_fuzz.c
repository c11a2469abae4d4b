/*
 * tokenizer_fuzz.c -- the ouro side of test/bench/tokenizer_fuzz.sh: encodes every string of a
 * JSON array with the tokenizer of MODEL_DIR and prints, per string, a line of comma-separated
 * ids and a line "D<bytes>:<decoded text>", exactly as tokenizer_fuzz.js prints the Hugging
 * Face results, so that the two outputs can be compared byte for byte.
 *
 *   tokenizer_fuzz MODEL_DIR TEXTS.json
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ouro.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tokenizer_fuzz MODEL_DIR TEXTS.json\n");
        return 2;
    }
    ouro_tokenizer *tok;
    ouro_error e;
    if (ouro_tokenizer_load(argv[1], &tok, &e) != OURO_OK) {
        fprintf(stderr, "tokenizer_fuzz: %s\n", e.message);
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);   /* the JSON text */
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); return 1; }
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_ParseWithLength(buf, (size_t)n);
    free(buf);
    const cJSON *c;
    int rc = 0;
    cJSON_ArrayForEach(c, root) {
        int32_t *ids;
        size_t k, len;
        char *text;
        if (!cJSON_IsString(c) ||
            ouro_tokenizer_encode(tok, c->valuestring, strlen(c->valuestring), &ids, &k, &e) != OURO_OK ||
            ouro_tokenizer_decode(tok, ids, k, false, &text, &len, &e) != OURO_OK) {
            fprintf(stderr, "tokenizer_fuzz: %s\n", e.message);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < k; i++) printf(i ? ",%d" : "%d", (int)ids[i]);
        printf("\nD%zu:", len);
        fwrite(text, 1, len, stdout);
        putchar('\n');
        ouro_free(text);
        ouro_free(ids);
    }
    cJSON_Delete(root);
    ouro_tokenizer_free(tok);
    return rc;
}
