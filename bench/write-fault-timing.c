// One-byte write latency per fault kind on this machine: none (present, writable),
// anon (first touch), cow (write to a page shared with a fork parent), wp-reuse (a
// write-protect fault that reuses the page once the fork child has gone); the shipped
// figures of src/security/timing-model.ts. Build: cc -O2 -o /tmp/wft bench/write-fault-timing.c
// Prints one JSON line per kind with percentiles in ns (clock_gettime around each store).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#define N 20000
static double ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void report(const char*k,double*v,int n){qsort(v,n,sizeof *v,cmp);
 printf("{\"kind\":\"%s\",\"n\":%d,\"p5\":%.0f,\"p25\":%.0f,\"p50\":%.0f,\"p75\":%.0f,\"p95\":%.0f,\"p99\":%.0f}\n",k,n,v[n*5/100],v[n/4],v[n/2],v[n*3/4],v[n*95/100],v[n*99/100]);}
int main(void){long pg=4096;static double t[N];
 char*m=mmap(0,N*pg,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
 madvise(m,N*pg,MADV_NOHUGEPAGE);
 for(int i=0;i<N;i++){double a=ns();m[i*pg]=1;t[i]=ns()-a;} report("anon",t,N);
 for(int i=0;i<N;i++){double a=ns();m[i*pg+7]=2;t[i]=ns()-a;} report("none",t,N);
 fflush(stdout);
 pid_t c=fork(); if(c==0){for(int i=0;i<N;i++){double a=ns();m[i*pg+9]=3;t[i]=ns()-a;} report("cow",t,N);fflush(stdout);_exit(0);}
 waitpid(c,0,0);
 // The child has exited: every page is the parent's alone again, but its PTE is still
 // write-protected from the fork, so the next write takes a fault that reuses the page.
 for(int i=0;i<N;i++){double a=ns();m[i*pg+11]=4;t[i]=ns()-a;} report("wp-reuse",t,N);
 // timer overhead alone
 for(int i=0;i<N;i++){double a=ns();t[i]=ns()-a;} report("timer",t,N);
 return 0;}
