/* src/io/json.h - a small strict JSON reader for file headers (internal).
 *
 * Two passes over one text, neither of which allocates:
 *
 *   1. cn__json_validate checks the whole text is exactly one RFC 8259 value
 *      followed only by whitespace, nested at most CN__JSON_MAX_DEPTH deep,
 *      with strings that are valid UTF-8 (no overlongs, surrogates or code
 *      points past U+10FFFF), no raw control characters and only the escapes
 *      \" \\ \/ \b \f \n \r \t \uXXXX (surrogate pairs must pair up).
 *   2. The pull functions below then walk the validated text value by value.
 *      Because the syntax is known to be good they only fail on a value of
 *      the wrong kind, so a caller's messages can be about meaning.
 *
 *     cn__json j;
 *     cn__json_init(&j, text, len);           // text must be writable
 *     if (cn__json_validate(&j)) return fail(j.err);
 *     if (cn__json_peek(&j) != CN__JSON_OBJECT) ...
 *     cn__json_enter(&j);
 *     while (cn__json_more(&j)) {
 *         char *key; size_t klen;
 *         cn__json_key(&j, &key, &klen);      // key is NUL-terminated
 *         ... read the value with cn__json_string / _int / _enter
 *     }
 *
 * Strings are decoded in place: a decoded string is never longer than its
 * escaped form, so it is written over its own quoted text and NUL-terminated
 * there. The returned pointers stay valid as long as the text. A "\u0000"
 * escape yields an embedded NUL, which the length reveals.
 */
#ifndef CONVNET_IO_JSON_H
#define CONVNET_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define CN__JSON_MAX_DEPTH 16
/* The largest integer cn__json_int accepts: every integer up to it is exact
 * in a double, so other JSON readers agree on its value. */
#define CN__JSON_MAX_INT (INT64_C(1) << 53)

typedef enum cn__json_kind {
    CN__JSON_BAD = 0, /* end of text or a character no value starts with */
    CN__JSON_OBJECT,
    CN__JSON_ARRAY,
    CN__JSON_STRING,
    CN__JSON_NUMBER,
    CN__JSON_TRUE,
    CN__JSON_FALSE,
    CN__JSON_NULL,
    CN__JSON_KIND_COUNT
} cn__json_kind;

typedef struct cn__json {
    char *text; /* borrowed; modified by string decoding */
    size_t len;
    size_t pos;    /* the cursor, a byte offset into text */
    char err[200]; /* "byte 17: invalid escape \q in a string" after a failure */
} cn__json;

CN__HIDDEN void cn__json_init(cn__json *j, char *text, size_t len);

/* Pass 1: 0 if the text is valid, else -1 with j->err set. Leaves the
 * cursor at 0 either way. */
CN__HIDDEN int cn__json_validate(cn__json *j);

/* "an object", "a string", "null", ... for messages. */
CN__HIDDEN const char *cn__json_kind_name(cn__json_kind k);

/* Pass 2. Each function skips leading whitespace and returns 0 on success or
 * -1 with j->err set when the next value is not of the kind asked for. */

/* The kind of the next value, without consuming it. */
CN__HIDDEN cn__json_kind cn__json_peek(cn__json *j);
/* Consumes the '{' or '[' of the next value. */
CN__HIDDEN int cn__json_enter(cn__json *j);
/* Inside an object or array: 1 if a member/element follows (its separating
 * comma consumed), 0 after consuming the closing bracket. */
CN__HIDDEN int cn__json_more(cn__json *j);
/* An object member's key and its colon. */
CN__HIDDEN int cn__json_key(cn__json *j, char **key, size_t *len);
/* A string value, decoded in place and NUL-terminated. */
CN__HIDDEN int cn__json_string(cn__json *j, char **s, size_t *len);
/* An integer value (no fraction or exponent) with |v| <= CN__JSON_MAX_INT. */
CN__HIDDEN int cn__json_int(cn__json *j, int64_t *v);

/* Appends s (n bytes, valid UTF-8) as a quoted JSON string to out, escaping
 * the way serde_json does (", \ and control characters; other bytes raw), and
 * returns the new length. With out == NULL it only counts. */
CN__HIDDEN size_t cn__json_quote(char *out, const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8 (the rules of pass 1), else 0. */
CN__HIDDEN int cn__utf8_valid(const char *s, size_t n);

#endif
