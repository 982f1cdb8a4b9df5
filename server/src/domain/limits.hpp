#pragma once

#include <chrono>
#include <cstddef>

// Every size and count limit of the product, in one place. Units or qualifiers come last.
namespace chat::domain::limits {

inline constexpr std::size_t body_code_points_max = 100'000;
inline constexpr std::size_t username_bytes_min = 3;
inline constexpr std::size_t username_bytes_max = 32;
inline constexpr std::size_t email_bytes_max = 254;
inline constexpr std::size_t password_bytes_min = 8;
inline constexpr std::size_t password_bytes_max = 1024;
inline constexpr std::size_t display_name_code_points_max = 64;
inline constexpr std::size_t bio_code_points_max = 500;
inline constexpr std::size_t profile_picture_bytes_max = 255;
inline constexpr std::size_t client_msg_id_bytes_max = 64;
inline constexpr std::size_t device_name_code_points_max = 64;
inline constexpr std::size_t search_query_code_points_max = 64;
inline constexpr int search_results_default = 20;
inline constexpr int search_results_max = 50;
inline constexpr int history_page_default = 50;
inline constexpr int history_page_max = 100;
inline constexpr std::size_t group_members_max = 100;
inline constexpr std::size_t group_name_code_points_max = 100;
inline constexpr std::size_t emoji_code_points_max = 16;
inline constexpr std::size_t presence_watch_max = 500;
inline constexpr int sync_page_default = 500;
inline constexpr int sync_page_max = 1000;
inline constexpr std::size_t sync_since_max = 10'000;

// A JSON-escaped body of 100,000 code points can take 6 bytes per code point ("\u00e9"), so the
// frame and request limits leave room for that; anything larger is refused before it is parsed.
inline constexpr std::size_t http_body_bytes_max = 1 << 20;
inline constexpr std::size_t ws_frame_bytes_max = 1 << 20;
// Past this many queued outgoing bytes a session is a slow consumer: it is closed (4008) and
// resyncs from history when it comes back, so a stalled client cannot grow server memory.
inline constexpr std::size_t send_queue_bytes_max = 4 << 20;

}  // namespace chat::domain::limits
