// policy: validate-azure-ad-token and validate-jwt (apim-policies.md §2, §3) over the token core
// (jwt/) and keys from OpenID discovery (a jwt::KeySource the gateway provides).
#pragma once

#include <memory>
#include <string>

#include "core/result.hpp"
#include "policy/runtime.hpp"

namespace mcpgate::policy {

core::Result<std::shared_ptr<Policy>, std::string> make_validate_azure_ad_token(
    const Element& e, const CompileEnv& env);
core::Result<std::shared_ptr<Policy>, std::string> make_validate_jwt(const Element& e,
                                                                     const CompileEnv& env);

// The v2 authority ("{authority}/{tenant}/v2.0") of the first validate-azure-ad-token in the
// pipeline's inbound section: where an MCP client gets tokens for the API. Empty without one.
std::string entra_v2_authority(const Pipeline& pipeline, std::string_view default_authority);

}  // namespace mcpgate::policy
