/* The simulated driver's cuGetProcAddress table, generated from cudaTypedefs.h. */
#ifndef SIM_TABLE_H
#define SIM_TABLE_H
struct sim_pfn_entry {
  const char *base;   /* symbol name as passed to cuGetProcAddress */
  int version;        /* CUDA version that introduced this ABI */
  int variant;        /* 0 legacy stream, 1 _ptsz, 2 _ptds */
  const char *export_name;
  void *fn;
};
extern const struct sim_pfn_entry sim_pfn_table[];
extern const unsigned sim_pfn_count;
#endif
