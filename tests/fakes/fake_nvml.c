/* A stand-in for the NVIDIA driver's NVML library (libnvidia-ml.so.1), for tests.
 *
 * It exports the NVML calls torchup makes, with the same C signatures as nvml.h, and
 * answers from a text file named by FAKE_NVML_CONFIG:
 *
 *     init 0                      return code of nvmlInit_v2 (9: driver not loaded)
 *     driver 580.65.06
 *     cuda 13000                  nvmlSystemGetCudaDriverVersion_v2 (13.0)
 *     gpu 6 1 11811160064 NVIDIA GeForce GTX 1080 Ti   (cc major, minor, bytes, name)
 *
 * so torchup's real ctypes code path (loading, calls, structs, errors) is exercised.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int major, minor; unsigned long long mem; char name[96]; } gpu_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

static gpu_t gpus[16];
static int ngpu, init_rc, cuda;
static char driver[96];

static void load(void) {
    ngpu = 0; init_rc = 0; cuda = 0; driver[0] = 0;
    const char *path = getenv("FAKE_NVML_CONFIG");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) { init_rc = 9; return; }
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "init ", 5)) init_rc = atoi(line + 5);
        else if (!strncmp(line, "driver ", 7)) snprintf(driver, sizeof driver, "%s", line + 7);
        else if (!strncmp(line, "cuda ", 5)) cuda = atoi(line + 5);
        else if (!strncmp(line, "gpu ", 4) && ngpu < 16) {
            gpu_t *g = &gpus[ngpu];
            int n = 0;
            if (sscanf(line + 4, "%d %d %llu %n", &g->major, &g->minor, &g->mem, &n) >= 3) {
                snprintf(g->name, sizeof g->name, "%s", line + 4 + n);
                ngpu++;
            }
        }
    }
    fclose(f);
}

int nvmlInit_v2(void) { load(); return init_rc; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int rc) {
    return rc == 9 ? "Driver Not Loaded" : rc == 18 ? "RM has detected an NVML/RM version mismatch." : "Unknown Error";
}
int nvmlSystemGetDriverVersion(char *buf, unsigned len) { snprintf(buf, len, "%s", driver); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = cuda; return 0; }
int nvmlDeviceGetCount_v2(unsigned *n) { *n = (unsigned)ngpu; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h) {
    if (i >= (unsigned)ngpu) return 2;
    *h = &gpus[i];
    return 0;
}
int nvmlDeviceGetName(void *h, char *buf, unsigned len) { snprintf(buf, len, "%s", ((gpu_t *)h)->name); return 0; }
int nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    *major = ((gpu_t *)h)->major; *minor = ((gpu_t *)h)->minor; return 0;
}
int nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    m->total = ((gpu_t *)h)->mem; m->free = m->total; m->used = 0; return 0;
}
