/* version.h — the one place the version number lives. */
#ifndef RF_VERSION_H
#define RF_VERSION_H
#define ROUTEFS_VERSION "0.1.0"
#endif
