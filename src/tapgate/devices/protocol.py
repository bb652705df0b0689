"""Constants of the device protocol that both the server and the authenticator use."""

ENROLLMENT_PATH = "/e/"
# Authorization scheme of signed device requests.
DEVICE_AUTH_SCHEME = "TapgateDevice"
