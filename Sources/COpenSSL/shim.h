#ifndef DOMICILE_COPENSSL_SHIM_H
#define DOMICILE_COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bn.h>

// Function-like and chained macros that Swift does not import as constants.
static inline int domicile_evp_pkey_ed25519(void) { return EVP_PKEY_ED25519; }
static inline int domicile_evp_ctrl_gcm_set_ivlen(void) { return EVP_CTRL_GCM_SET_IVLEN; }
static inline int domicile_evp_ctrl_gcm_get_tag(void) { return EVP_CTRL_GCM_GET_TAG; }
static inline int domicile_evp_ctrl_gcm_set_tag(void) { return EVP_CTRL_GCM_SET_TAG; }


// TLS (DomicileNet's TLSContext and TLSSession; cluster init's certificates).
static inline int domicile_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline void domicile_ssl_ctx_set_defaults(SSL_CTX *ctx) {
    // Partial writes: SSL_write returns after each record, like send(2) taking part of a buffer;
    // the pending output may move (it is a growing array) between a blocked write and its retry.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
}
static inline int domicile_ssl_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}
static inline int domicile_tls1_2_version(void) { return TLS1_2_VERSION; }
static inline int domicile_tls1_3_version(void) { return TLS1_3_VERSION; }
static inline int domicile_ssl_filetype_pem(void) { return SSL_FILETYPE_PEM; }

// Certificates (DomicileNet's CertificateIssuer).
static inline EVP_PKEY *domicile_ec_p256_key(void) { return EVP_EC_gen("P-256"); }
static inline int domicile_x509_add_extension(X509 *certificate, X509 *issuer, int nid, const char *value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, certificate, NULL, NULL, 0);
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, &context, nid, value);
    if (extension == NULL) return 0;
    int added = X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
    return added;
}
static inline long domicile_bio_pending(BIO *bio) { return BIO_ctrl(bio, BIO_CTRL_PENDING, 0, NULL); }

#endif
