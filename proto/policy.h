/* SPDX-License-Identifier: MIT */
/*
 * The access policy: which identity (a client certificate's CN or SAN, or
 * "uid:N" for a local user) has which role, bound to which tenant. vmmd
 * reads it from a JSON file; PROTOCOL.md ("Access policy") documents the
 * format:
 *
 *   {"identities": {
 *      "admin.example": {"role": "admin"},
 *      "ops-a":         {"role": "operator", "tenant": "team-a"},
 *      "uid:1000":      {"role": "viewer", "tenant": "team-b"}}}
 *
 * Errors name the field the way a user finds it in the file:
 * "identities.ops-a.rol: unknown field". Functions that parse take an err
 * buffer (err may be NULL when errlen is 0) and return -EINVAL with the
 * message in it when the input is wrong, or -ENOMEM.
 */
#ifndef PROTO_POLICY_H
#define PROTO_POLICY_H

#include <stddef.h>

#include <jansson.h>

/* Roles are ordered: a role may do everything the ones below it may. */
enum policy_role {
	POLICY_ROLE_NONE,
	POLICY_ROLE_VIEWER,
	POLICY_ROLE_OPERATOR,
	POLICY_ROLE_ADMIN,
	POLICY_ROLE_MAX,
};

#define POLICY_FILE_MAX		(1u << 20)	/* bytes */
#define POLICY_IDENTITIES_MAX	10000u
#define POLICY_IDENTITY_MAX	255		/* characters */
#define POLICY_TENANT_MAX	63		/* characters */

struct policy;

/*
 * Read and check the policy file at path (a regular file of at most
 * POLICY_FILE_MAX bytes, checked before it is read). Errors start with the
 * path: "/etc/vmmd/policy.json: identities.ops-a.rol: unknown field",
 * "/etc/vmmd/policy.json:3:5: ..." for JSON syntax. Returns 0 and a new
 * policy in *ret, -ENOENT, -EACCES (and other errnos of open and read),
 * -EFBIG when the file is too large, -EINVAL, or -ENOMEM.
 */
int policy_load(const char *path, struct policy **ret, char *err,
		size_t errlen);

/*
 * Check j (borrowed) and build a new policy from it in *ret. Identities
 * are 1 to POLICY_IDENTITY_MAX characters of printable ASCII (0x20..0x7e);
 * one that starts with "uid:" must go on with a decimal uid
 * ("uid:1000"). At most POLICY_IDENTITIES_MAX of them.
 */
int policy_from_json(json_t *j, struct policy **ret, char *err,
		     size_t errlen);

/*
 * The role of identity (matched exactly, case included) in *ret_role and
 * its tenant in *ret_tenant: a string borrowed from p (valid until
 * policy_free()), or NULL when the identity is not bound to a tenant.
 * Either output may be NULL. Returns 0, or -ENOENT for an identity that is
 * not in the policy (outputs untouched).
 */
int policy_lookup(const struct policy *p, const char *identity,
		  enum policy_role *ret_role, const char **ret_tenant);

/* Number of identities in p. */
size_t policy_count(const struct policy *p);

/* Free p; NULL is a no-op. */
void policy_free(struct policy *p);

/*
 * "none", "viewer", "operator", "admin"; "unknown" for values outside the
 * enum. Static string.
 */
const char *policy_role_name(enum policy_role r);

/*
 * The role for "viewer", "operator", "admin" or "none" (exact, lower
 * case). Returns 0, or -EINVAL for anything else (*ret untouched).
 */
int policy_role_from_name(const char *s, enum policy_role *ret);

#endif
