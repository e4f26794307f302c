/* names.c — see names.h. */
#include "names.h"

#include <string.h>

const char *const name_result_suffix[NAME_RESULT_KINDS] = {".out", ".meta", ".err", ".live"};

static int has_suffix(const char *name, size_t n, const char *suffix)
{
    size_t s = strlen(suffix);
    return n > s && strcmp(name + n - s, suffix) == 0;
}

int name_is_temp(const char *name)
{
    static const char *const suffixes[] = {".swp", ".swx", ".tmp", ".part", ".partial"};
    size_t n = strlen(name);
    if (n == 0 || name[0] == '.' || name[n - 1] == '~')
        return 1;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (has_suffix(name, n, suffixes[i]))
            return 1;
    return 0;
}

int name_result_kind(const char *name)
{
    if (name_is_temp(name))
        return -1;
    size_t n = strlen(name);
    for (int r = 0; r < NAME_RESULT_KINDS; r++)
        if (has_suffix(name, n, name_result_suffix[r]))
            return r;
    return -1;
}

int name_is_prompt(const char *name)
{
    return !name_is_temp(name) && name_result_kind(name) < 0;
}
