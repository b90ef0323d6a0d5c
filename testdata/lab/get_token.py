import requests

# --- Replace with your actual values ---
tenant_id = "YOUR_TENANT_ID"
client_id = "YOUR_CLIENT_ID"
client_secret = "YOUR_CLIENT_SECRET"
scope = "https://graph.microsoft.com/.default"

# Token endpoint for your tenant
token_url = f"https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"

# Request body
payload = {
    "client_id": client_id,
    "client_secret": client_secret,
    "scope": scope,
    "grant_type": "client_credentials"
}

# Request the token
response = requests.post(token_url, data=payload)
if response.status_code == 200:
    token_data = response.json()
    access_token = token_data["access_token"]
    with open("token.jwt", "w") as token_file:
        token_file.write(access_token)
else:
    print("Failed to get token:", response.status_code, response.text)
