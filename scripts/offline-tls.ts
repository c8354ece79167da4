/**
 * A throwaway certificate and key for offline tools (synth, previews under the mocked engine, CI)
 * when a stack has `balancer.tls: provided`: the real pair stays in the user's encrypted stack
 * config and never reaches the repository. These are PUBLIC PLACEHOLDERS: the key is published
 * here, so this pair must never be used for a real deployment (its name, offline-placeholder.invalid,
 * cannot resolve).
 *
 * Self-signed EC P-256, valid until November 2126, generated once with:
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
 *     -subj /CN=offline-placeholder.invalid -addext subjectAltName=DNS:offline-placeholder.invalid
 * It passes `checkTlsMaterial` (test/unit/tls-material.test.ts), so offline runs take the same
 * path as a real certificate.
 */

/** PEM certificate for CN and DNS name offline-placeholder.invalid (public placeholder). */
export const OFFLINE_TLS_CERTIFICATE: string =
  [
    "-----BEGIN CERTIFICATE-----",
    "MIIByzCCAXGgAwIBAgIUep/YfEIGG+au5T87GgdK6J0nPicwCgYIKoZIzj0EAwIw",
    "JjEkMCIGA1UEAwwbb2ZmbGluZS1wbGFjZWhvbGRlci5pbnZhbGlkMCAXDTI2MTEy",
    "NzAwNDcwOFoYDzIxMjYxMTAzMDA0NzA4WjAmMSQwIgYDVQQDDBtvZmZsaW5lLXBs",
    "YWNlaG9sZGVyLmludmFsaWQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARFhNCG",
    "M2Q/qv+n5j2hzD2PiYjpf6RON3nyf7cyOKv5rFLpE5uxHy5FF9ve9lAcsNAO0c1h",
    "0kzDoHbznleUwSeWo3sweTAdBgNVHQ4EFgQUENei9GCLOsR341yq0cNhrwJUL5kw",
    "HwYDVR0jBBgwFoAUENei9GCLOsR341yq0cNhrwJUL5kwDwYDVR0TAQH/BAUwAwEB",
    "/zAmBgNVHREEHzAdghtvZmZsaW5lLXBsYWNlaG9sZGVyLmludmFsaWQwCgYIKoZI",
    "zj0EAwIDSAAwRQIgRw9ZRKQwTYfWu0QsrXmvz4mj0BaS7COU3iYuc7GS0GYCIQDz",
    "0P/REe2whTPbgOCdFP/BfyYeN5AcMgQhpN8+cLk+Ag==",
    "-----END CERTIFICATE-----",
  ].join("\n") + "\n";

/** PEM private key of {@link OFFLINE_TLS_CERTIFICATE}: a public placeholder, never a real deployment's key. */
export const OFFLINE_TLS_KEY: string =
  [
    "-----BEGIN PRIVATE KEY-----",
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguyRpWkGe3ytSondL",
    "5n2ngVp7EiIF6cnEai2ce2DY9v6hRANCAARFhNCGM2Q/qv+n5j2hzD2PiYjpf6RO",
    "N3nyf7cyOKv5rFLpE5uxHy5FF9ve9lAcsNAO0c1h0kzDoHbznleUwSeW",
    "-----END PRIVATE KEY-----",
  ].join("\n") + "\n";
