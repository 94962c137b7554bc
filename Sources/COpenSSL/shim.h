#ifndef DOMICILE_COPENSSL_SHIM_H
#define DOMICILE_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

// Function-like and chained macros that Swift does not import as constants.
static inline int domicile_evp_pkey_ed25519(void) { return EVP_PKEY_ED25519; }
static inline int domicile_evp_ctrl_gcm_set_ivlen(void) { return EVP_CTRL_GCM_SET_IVLEN; }
static inline int domicile_evp_ctrl_gcm_get_tag(void) { return EVP_CTRL_GCM_GET_TAG; }
static inline int domicile_evp_ctrl_gcm_set_tag(void) { return EVP_CTRL_GCM_SET_TAG; }

#endif
