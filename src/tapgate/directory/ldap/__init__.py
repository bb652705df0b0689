"""The `ldap` auth profile: users, passwords and account state from LDAP or Active Directory.

settings     LdapSettings, built from an auth profile mapping
validation   checks of single settings keys, with errors that name the key
connection   TLS, bind and failover between servers (blocking)
pool         reused service connections bound as bind_dn (blocking)
search       login name to filter, entry to DirectoryUser (blocking)
groups       nested group expansion (blocking)
account      account state from bind results and attributes (pure)
diagnostics  connection test and value suggestions for administrators (blocking)
profile      LdapAuthProfile, the async AuthProfile that runs the rest in worker threads
"""

from tapgate.directory.ldap.profile import LdapAuthProfile
from tapgate.directory.ldap.settings import LdapSettings

__all__ = ["LdapAuthProfile", "LdapSettings"]
