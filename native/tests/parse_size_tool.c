/* Reads one size per line on stdin and prints "ok <bytes>" or "invalid": lets the TypeScript contract
 * test check that parseSize and emuv_parse_size agree on the same table. */
#include <stdio.h>
#include <string.h>
#include "core.h"
int main(void) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    uint64_t v;
    if (emuv_parse_size(line, &v) == 0) printf("ok %llu\n", (unsigned long long)v);
    else printf("invalid\n");
  }
  return 0;
}
