#include "util/texts.h"

#include <string.h>

const sk_text_t *sk_text_find(const char *name)
{
    for (const sk_text_t *t = sk_texts; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}
