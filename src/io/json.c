/* A strict JSON reader in two passes: validate everything, then pull values.
 * See json.h for the contract. Recursion is bounded by CN__JSON_MAX_DEPTH,
 * which pass 1 enforces before pass 2 recurses anywhere. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

static int fail(cn__json *j, size_t at, const char *fmt, ...) CN__PRINTF(3, 4);
static int fail(cn__json *j, size_t at, const char *fmt, ...)
{
    int n = snprintf(j->err, sizeof j->err, "byte %zu: ", at);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof j->err)
        vsnprintf(j->err + n, sizeof j->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A character for a message: 'x' when printable, else its byte value. */
static const char *show(unsigned c, char buf[8])
{
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 8, "'%c'", (char)c);
    else
        snprintf(buf, 8, "0x%02x", c & 0xffu);
    return buf;
}

void cn__json_init(cn__json *j, char *text, size_t len)
{
    j->text = text;
    j->len = len;
    j->pos = 0;
    j->err[0] = '\0';
}

const char *cn__json_kind_name(cn__json_kind k)
{
    static const char *const names[] = {"nothing",  "an object", "an array", "a string",
                                        "a number", "true",      "false",    "null"};
    _Static_assert(sizeof names / sizeof names[0] == CN__JSON_KIND_COUNT, "one name per kind");
    return (unsigned)k < CN__JSON_KIND_COUNT ? names[k] : "nothing";
}

static void skip_ws(cn__json *j)
{
    while (j->pos < j->len) {
        char c = j->text[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if there is
 * none: overlong forms, surrogates and code points past U+10FFFF are
 * rejected because other readers (Rust's str, Python) refuse them too. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

int cn__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- scanners shared by both passes -------------------------------------- */

/* Four hex digits at text[i..i+4), or -1. */
static long hex4(const cn__json *j, size_t i)
{
    if (i > j->len || j->len - i < 4) return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        char c = j->text[i + k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The string whose opening quote is at the cursor. With decode set, its
 * decoded bytes are written over the text from just after the opening quote
 * (the write position never passes the read position) and NUL-terminated. */
static int scan_string(cn__json *j, int decode, char **out, size_t *out_len)
{
    const unsigned char *t = (const unsigned char *)j->text;
    size_t start = j->pos + 1, i = start, w = start;
    for (;;) {
        if (i >= j->len) return fail(j, j->pos, "unterminated string");
        unsigned c = t[i];
        if (c == '"') break;
        if (c < 0x20)
            return fail(j, i, "raw control character 0x%02x in a string (it must be escaped)", c);
        if (c != '\\') {
            size_t n = utf8_seq(t + i, j->len - i);
            if (!n) return fail(j, i, "invalid UTF-8 in a string");
            if (decode) memmove(j->text + w, j->text + i, n);
            i += n;
            w += n;
            continue;
        }
        if (i + 1 >= j->len) return fail(j, j->pos, "unterminated string");
        static const char simple[] = "\"\\/bfnrt", meant[] = "\"\\/\b\f\n\r\t";
        const char *hit = t[i + 1] ? strchr(simple, t[i + 1]) : NULL;
        uint32_t cp;
        size_t used = 2;
        if (hit) {
            cp = (unsigned char)meant[hit - simple];
        } else if (t[i + 1] == 'u') {
            long hi = hex4(j, i + 2);
            if (hi < 0) return fail(j, i, "invalid \\u escape (needs 4 hex digits)");
            used = 6;
            cp = (uint32_t)hi;
            if (hi >= 0xdc00 && hi <= 0xdfff)
                return fail(j, i, "\\u%04lx is a lone low surrogate", hi);
            if (hi >= 0xd800 && hi <= 0xdbff) {
                /* UTF-16 pairs: a high surrogate must be followed by a low
                 * one; alone it names no character and cannot be UTF-8. */
                long lo =
                    i + 7 < j->len && t[i + 6] == '\\' && t[i + 7] == 'u' ? hex4(j, i + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(j, i, "\\u%04lx is a high surrogate without a low one", hi);
                cp = 0x10000 + ((uint32_t)(hi - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
                used = 12;
            }
        } else if (t[i + 1] > 0x20 && t[i + 1] < 0x7f) {
            return fail(j, i, "invalid escape \\%c in a string", t[i + 1]);
        } else {
            return fail(j, i, "invalid byte 0x%02x after a backslash in a string", t[i + 1]);
        }
        /* An escape of `used` bytes decodes to at most `used` bytes (6 -> 3,
         * 12 -> 4), so in-place writing stays behind the reader. */
        if (decode) w += put_utf8(j->text + w, cp);
        i += used;
    }
    if (decode) {
        j->text[w] = '\0';
        *out = j->text + start;
        *out_len = w - start;
    }
    j->pos = i + 1;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The number at the cursor per RFC 8259's grammar. *integral says whether it
 * has neither fraction nor exponent. */
static int scan_number(cn__json *j, int *integral)
{
    size_t i = j->pos;
    const char *t = j->text;
    *integral = 1;
    if (i < j->len && t[i] == '-') i++;
    if (i >= j->len || !is_digit(t[i])) return fail(j, j->pos, "invalid number");
    if (t[i] == '0')
        i++;
    else
        while (i < j->len && is_digit(t[i])) i++;
    if (i < j->len && t[i] == '.') {
        *integral = 0;
        if (++i >= j->len || !is_digit(t[i])) return fail(j, j->pos, "invalid number");
        while (i < j->len && is_digit(t[i])) i++;
    }
    if (i < j->len && (t[i] == 'e' || t[i] == 'E')) {
        *integral = 0;
        i++;
        if (i < j->len && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= j->len || !is_digit(t[i])) return fail(j, j->pos, "invalid number");
        while (i < j->len && is_digit(t[i])) i++;
    }
    j->pos = i;
    return 0;
}

static int scan_literal(cn__json *j, const char *word)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->text + j->pos, word, n) != 0)
        return fail(j, j->pos, "invalid literal (expected %s)", word);
    j->pos += n;
    return 0;
}

/* ---- pass 1 -------------------------------------------------------------- */

/* depth: the number of containers around this value. */
static int v_value(cn__json *j, int depth)
{
    skip_ws(j);
    if (j->pos >= j->len) return fail(j, j->pos, "unexpected end of text, expected a value");
    char c = j->text[j->pos], b[8];
    int integral;
    switch (c) {
    case '{':
    case '[': {
        char close = c == '{' ? '}' : ']';
        if (depth >= CN__JSON_MAX_DEPTH)
            return fail(j, j->pos, "nested deeper than %d levels", CN__JSON_MAX_DEPTH);
        j->pos++;
        skip_ws(j);
        if (j->pos < j->len && j->text[j->pos] == close) {
            j->pos++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                skip_ws(j);
                if (j->pos >= j->len || j->text[j->pos] != '"')
                    return fail(j, j->pos, "expected a string key");
                if (scan_string(j, 0, NULL, NULL)) return -1;
                skip_ws(j);
                if (j->pos >= j->len || j->text[j->pos] != ':')
                    return fail(j, j->pos, "expected ':' after a key");
                j->pos++;
            }
            if (v_value(j, depth + 1)) return -1;
            skip_ws(j);
            if (j->pos >= j->len)
                return fail(j, j->pos, "unexpected end of text inside an %s",
                            c == '{' ? "object" : "array");
            char d = j->text[j->pos++];
            if (d == close) return 0;
            if (d != ',')
                return fail(j, j->pos - 1, "expected ',' or '%c', found %s", close,
                            show((unsigned char)d, b));
        }
    }
    case '"':
        return scan_string(j, 0, NULL, NULL);
    case 't':
        return scan_literal(j, "true");
    case 'f':
        return scan_literal(j, "false");
    case 'n':
        return scan_literal(j, "null");
    default:
        if (c == '-' || is_digit(c)) return scan_number(j, &integral);
        return fail(j, j->pos, "unexpected %s, expected a value", show((unsigned char)c, b));
    }
}

int cn__json_validate(cn__json *j)
{
    j->pos = 0;
    int r = v_value(j, 0);
    if (r == 0) {
        skip_ws(j);
        if (j->pos < j->len) {
            char b[8];
            r = fail(j, j->pos, "unexpected %s after the end of the JSON value",
                     show((unsigned char)j->text[j->pos], b));
        }
    }
    j->pos = 0;
    return r;
}

/* ---- pass 2 -------------------------------------------------------------- */

cn__json_kind cn__json_peek(cn__json *j)
{
    skip_ws(j);
    if (j->pos >= j->len) return CN__JSON_BAD;
    char c = j->text[j->pos];
    switch (c) {
    case '{':
        return CN__JSON_OBJECT;
    case '[':
        return CN__JSON_ARRAY;
    case '"':
        return CN__JSON_STRING;
    case 't':
        return CN__JSON_TRUE;
    case 'f':
        return CN__JSON_FALSE;
    case 'n':
        return CN__JSON_NULL;
    default:
        return c == '-' || is_digit(c) ? CN__JSON_NUMBER : CN__JSON_BAD;
    }
}

static int expect(cn__json *j, cn__json_kind want)
{
    cn__json_kind k = cn__json_peek(j);
    if (k == want) return 0;
    return fail(j, j->pos, "expected %s, found %s", cn__json_kind_name(want),
                cn__json_kind_name(k));
}

int cn__json_enter(cn__json *j)
{
    cn__json_kind k = cn__json_peek(j);
    if (k != CN__JSON_OBJECT && k != CN__JSON_ARRAY)
        return fail(j, j->pos, "expected an object or array, found %s", cn__json_kind_name(k));
    j->pos++;
    return 0;
}

int cn__json_more(cn__json *j)
{
    skip_ws(j);
    if (j->pos >= j->len) return 0;
    char c = j->text[j->pos];
    if (c == '}' || c == ']') {
        j->pos++;
        return 0;
    }
    /* Validated text: anything else is a comma before the next item or the
     * first item itself. */
    if (c == ',') j->pos++;
    return 1;
}

int cn__json_key(cn__json *j, char **key, size_t *len)
{
    if (expect(j, CN__JSON_STRING) || scan_string(j, 1, key, len)) return -1;
    skip_ws(j);
    if (j->pos >= j->len || j->text[j->pos] != ':') return fail(j, j->pos, "expected ':'");
    j->pos++;
    return 0;
}

int cn__json_string(cn__json *j, char **s, size_t *len)
{
    if (expect(j, CN__JSON_STRING)) return -1;
    return scan_string(j, 1, s, len);
}

int cn__json_int(cn__json *j, int64_t *v)
{
    if (expect(j, CN__JSON_NUMBER)) return -1;
    size_t at = j->pos;
    int integral;
    if (scan_number(j, &integral)) return -1;
    const char *t = j->text + at;
    int n = (int)CN__MIN(j->pos - at, (size_t)40);
    if (!integral) return fail(j, at, "%.*s is not an integer", n, t);
    int neg = *t == '-';
    int64_t r = 0;
    for (const char *p = t + neg; p < j->text + j->pos; p++) {
        r = r * 10 + (*p - '0');
        /* Checked per digit, so r never exceeds 10 * 2^53 + 9. */
        if (r > CN__JSON_MAX_INT) return fail(j, at, "integer %.*s is larger than 2^53", n, t);
    }
    *v = neg ? -r : r;
    return 0;
}

/* Appends b to out at *w (out may be NULL: counting only). */
static void put(char *out, size_t *w, char b)
{
    if (out) out[*w] = b;
    (*w)++;
}

size_t cn__json_quote(char *out, const char *s, size_t n)
{
    /* serde_json's short escapes; other control characters become \u00XX
     * (lowercase hex) and everything else, UTF-8 included, is copied. */
    static const char shortened[] = "\"\\\b\f\n\r\t", letter[] = "\"\\bfnrt";
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    put(out, &w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *hit = c ? strchr(shortened, c) : NULL;
        if (hit) {
            put(out, &w, '\\');
            put(out, &w, letter[hit - shortened]);
        } else if (c < 0x20) {
            const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            for (int k = 0; k < 6; k++) put(out, &w, u[k]);
        } else {
            put(out, &w, (char)c);
        }
    }
    put(out, &w, '"');
    return w;
}
