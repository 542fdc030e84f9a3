/* convnet bench as a black box: it runs tiny problems end to end, prints the
 * documented JSON keys, and keeps the CLI's error contract. No timing is
 * asserted: the numbers depend on the machine and its load. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* A 2x8x8x4 -> 8 channel 3x3 convolution: milliseconds per pass. */
#define TINY "2 8 8 4 8 3 3 1 1 1 1 1 1 1"

/* Lines of out whose "kind" is kind, copied into lines[] (at most max). */
static int json_lines(const char *out, const char *kind, char lines[][1024], int max)
{
    char want[64];
    snprintf(want, sizeof want, "{\"kind\": \"%s\"", kind);
    int n = 0;
    for (const char *s = out; *s;) {
        size_t len = strcspn(s, "\n");
        if (!strncmp(s, want, strlen(want)) && n < max && len < 1024) {
            memcpy(lines[n], s, len);
            lines[n++][len] = '\0';
        }
        s += len;
        if (*s) s++;
    }
    return n;
}

/* The number after "key": in a JSON line, or -1 if the key is missing. */
static double num(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}

static int has_key(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    return strstr(line, k) != NULL;
}

static void json_lines_have_the_documented_keys(void)
{
    const tl_cli_result *r =
        tl_cli("bench", "--problem", TINY, "--reps", "1", "--threads", "1", "--json", NULL);
    CHECK(r->status == 0, "exit %d, stderr: %s", r->status, r->err);
    char lines[8][1024];
    CHECK(json_lines(r->out, "peak", lines, 8) == 1, "one peak line expected:\n%s", r->out);
    CHECK(num(lines[0], "gflops") > 0, "peak: %s", lines[0]);
    int n = json_lines(r->out, "conv", lines, 8);
    CHECK(n == 3, "3 conv lines (fwd, bwd_data, bwd_weights) expected, got %d:\n%s", n, r->out);
    const char *passes[3] = {"\"pass\": \"fwd\"", "\"pass\": \"bwd_data\"",
                             "\"pass\": \"bwd_weights\""};
    const char *keys[] = {"problem", "shape",    "pass", "threads",  "reps",    "ms",
                          "gflops",  "pct_peak", "impl", "ws_bytes", "floor_ms"};
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            CHECK(has_key(lines[i], keys[k]), "key %s missing: %s", keys[k], lines[i]);
        CHECK(strstr(lines[i], passes[i]), "line %d is not %s: %s", i, passes[i], lines[i]);
        CHECK(strstr(lines[i], "\"problem\": \"custom\""), "%s", lines[i]);
        CHECK(num(lines[i], "threads") == 1 && num(lines[i], "reps") == 1, "%s", lines[i]);
        CHECK(num(lines[i], "ms") > 0 && num(lines[i], "gflops") > 0, "%s", lines[i]);
        CHECK(num(lines[i], "floor_ms") > 0, "%s", lines[i]);
        /* 4 input channels into 8 outputs: the small-group kernel, except
         * for backward-data, whose transposed problem has 4 outputs */
        CHECK(strstr(lines[i], i == 1 ? "\"impl\": \"gemm\"" : "\"impl\": \"grouped\""), "%s",
              lines[i]);
        CHECK(!has_key(lines[i], "onednn_ms"), "no comparison asked for: %s", lines[i]);
    }
}

static void suite_problems_are_found_by_name_for_each_thread_count(void)
{
    const tl_cli_result *r =
        tl_cli("bench", "--suite", CN_SOURCE_DIR "/bench/conv_suite.txt", "--problem", "lenet1",
               "--pass", "fwd", "--threads", "1,2", "--reps", "1", "--json", NULL);
    CHECK(r->status == 0, "exit %d, stderr: %s", r->status, r->err);
    char lines[8][1024];
    int n = json_lines(r->out, "conv", lines, 8);
    CHECK(n == 2, "2 conv lines expected, got %d:\n%s", n, r->out);
    for (int i = 0; i < 2; i++) {
        CHECK(strstr(lines[i], "\"problem\": \"lenet1\""), "%s", lines[i]);
        CHECK(strstr(lines[i], "\"shape\": \"64 28 28 1 32 3 3 1 1 1 1 1 1 1\""), "%s", lines[i]);
        CHECK(num(lines[i], "threads") == i + 1, "%s", lines[i]);
    }
}

static void the_table_ends_with_geometric_means(void)
{
    const tl_cli_result *r = tl_cli("bench", "--problem", TINY, "--pass", "bwd_data", "--reps", "2",
                                    "--threads", "1", NULL);
    CHECK(r->status == 0, "exit %d, stderr: %s", r->status, r->err);
    CHECK(strstr(r->out, "GFLOP/s") && strstr(r->out, "%peak"), "no table header:\n%s", r->out);
    CHECK(strstr(r->out, "custom") && strstr(r->out, "bwd_data"), "no row:\n%s", r->out);
    CHECK(strstr(r->out, "geometric means"), "no summary:\n%s", r->out);
}

/* With oneDNN built in, the comparison keys appear; without it, the option
 * fails with exactly one line that says so. Turns of 2 runs that do not
 * divide the 3 timed runs still give each library exactly 3. */
static void compare_onednn_reports_ratios_or_says_why_not(void)
{
    const tl_cli_result *r =
        tl_cli("bench", "--problem", TINY, "--pass", "fwd,bwd_weights", "--reps", "3", "--threads",
               "1", "--compare", "onednn", "--interleave", "2", "--json", NULL);
    if (r->status == 1) {
        CHECK(r->err_lines == 1 && strstr(r->err, "oneDNN"), "stderr: %s", r->err);
        return;
    }
    CHECK(r->status == 0, "exit %d, stderr: %s", r->status, r->err);
    char lines[8][1024];
    int n = json_lines(r->out, "conv", lines, 8);
    CHECK(n == 2, "2 conv lines expected, got %d:\n%s", n, r->out);
    for (int i = 0; i < n; i++) {
        CHECK(num(lines[i], "onednn_ms") > 0 && num(lines[i], "onednn_gflops") > 0, "%s", lines[i]);
        CHECK(num(lines[i], "ratio") > 0 && has_key(lines[i], "onednn_impl"), "%s", lines[i]);
        CHECK(num(lines[i], "reps") == 3 && num(lines[i], "interleave") == 2, "%s", lines[i]);
    }
}

static void mistakes_are_one_line_with_the_right_status(void)
{
    const struct {
        const char *args[8];
        int status;
        const char *says;
    } cases[] = {
        {{"bench", "--pass", "sideways", NULL}, 2, "sideways"},
        {{"bench", "--reps", "0", NULL}, 2, "--reps"},
        {{"bench", "--threads", "0", NULL}, 2, "--threads"},
        {{"bench", "--compare", "mkl", NULL}, 2, "mkl"},
        {{"bench", "--interleave", "0", NULL}, 2, "--interleave"},
        {{"bench", "--problem", "1 2 3", NULL}, 2, "14"},
        {{"bench", "--problem", "nosuch", NULL}, 1, "nosuch"},
        {{"bench", "--suite", "/nonexistent/suite.txt", NULL}, 1, "/nonexistent/suite.txt"},
        {{"bench", "--problem", "1 8 8 6 8 3 3 1 1 1 1 1 1 4", "--reps", "1", NULL}, 1, "groups"},
        {{"bench", "--frobnicate", NULL}, 2, "--frobnicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tl_cli_result *r = tl_cli_argv(cases[i].args);
        CHECK(r->status == cases[i].status && r->err_lines == 1 && strstr(r->err, cases[i].says),
              "case %zu (%s %s): exit %d, stderr: %s", i, cases[i].args[1],
              cases[i].args[2] ? cases[i].args[2] : "", r->status, r->err);
    }
}

static void a_malformed_suite_line_is_named(void)
{
    char path[512];
    tl_path(path, sizeof path, "bad_suite.txt");
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fputs("# a comment\nok 1 8 8 4 8 3 3 1 1 1 1 1 1 1\nbad 1 8 8 4\n", f);
    fclose(f);
    const tl_cli_result *r = tl_cli("bench", "--suite", path, NULL);
    CHECK(r->status == 1 && r->err_lines == 1 && strstr(r->err, "bad_suite.txt:3"),
          "exit %d, stderr: %s", r->status, r->err);
}

int main(void)
{
    TL_RUN(json_lines_have_the_documented_keys);
    TL_RUN(suite_problems_are_found_by_name_for_each_thread_count);
    TL_RUN(the_table_ends_with_geometric_means);
    TL_RUN(compare_onednn_reports_ratios_or_says_why_not);
    TL_RUN(mistakes_are_one_line_with_the_right_status);
    TL_RUN(a_malformed_suite_line_is_named);
    return tl_summary();
}
